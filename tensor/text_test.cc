#include "tensor/text.h"

#include <string>

#include "gtest/gtest.h"

namespace dive {
namespace {

TEST(PrintableTest, PlainTextIsUnchanged) {
  EXPECT_EQ(Printable("lenet"), "lenet");
  EXPECT_EQ(Printable(""), "");
}

TEST(PrintableTest, EscapesTerminalControlSequences) {
  const std::string hostile = "x\x1b]0;PWNED\a\x1b[2J\x1b[31m";
  const std::string shown = Printable(hostile);
  EXPECT_EQ(shown.find('\x1b'), std::string::npos);
  EXPECT_EQ(shown.find('\a'), std::string::npos);
  EXPECT_EQ(shown, "x\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31m");
}

TEST(PrintableTest, EscapesQuotesNewlinesAndBytesOutsideAscii) {
  EXPECT_EQ(Printable("a'b\"c\\\n"), "a\\'b\\\"c\\\\\\n");
  EXPECT_EQ(Printable("\xc3\xa9\x9b"), "\\xc3\\xa9\\x9b");
  for (int c = 0; c < 256; ++c) {
    const std::string shown = Printable(std::string(1, static_cast<char>(c)));
    for (char out : shown) {
      EXPECT_TRUE(out >= 0x20 && out < 0x7f) << "byte " << c;
    }
  }
}

TEST(PrintableTest, CutsLongStrings) {
  EXPECT_EQ(Printable(std::string(100, 'a'), 4), "aaaa...");
  EXPECT_EQ(Printable("abcd", 4), "abcd");
  // The cut comes before escaping: an escape is never split.
  EXPECT_EQ(Printable("\n\n\n", 2), "\\n\\n...");
}

}  // namespace
}  // namespace dive
