#include "tensor/json.h"

#include <string>

#include "gtest/gtest.h"

namespace dive {
namespace {

TEST(JsonQuoteTest, PlainTextIsQuotedUnchanged) {
  EXPECT_EQ(JsonQuote(""), "\"\"");
  EXPECT_EQ(JsonQuote("conv1.weight"), "\"conv1.weight\"");
  // An apostrophe needs no escape in JSON (absl::CHexEscape writes \',
  // which JSON readers reject).
  EXPECT_EQ(JsonQuote("FMA's rate"), "\"FMA's rate\"");
}

TEST(JsonQuoteTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(JsonQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonQuote("line\nnext\ttab"), "\"line\\u000anext\\u0009tab\"");
  EXPECT_EQ(JsonQuote(std::string("nul\0x", 5)), "\"nul\\u0000x\"");
  EXPECT_EQ(JsonQuote("\x1f"), "\"\\u001f\"");
}

TEST(JsonQuoteTest, CopiesUtf8AndHighBytes) {
  EXPECT_EQ(JsonQuote("λ 0.5 — ok"), "\"λ 0.5 — ok\"");
  EXPECT_EQ(JsonQuote("\x7f\xff"), "\"\x7f\xff\"");
}

}  // namespace
}  // namespace dive
