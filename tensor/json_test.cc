#include "tensor/json.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace dive {
namespace {

std::string ErrorOf(absl::string_view text, int max_depth = 8) {
  absl::StatusOr<Json> doc = ParseJson(text, max_depth);
  EXPECT_FALSE(doc.ok()) << text;
  EXPECT_EQ(doc.status().code(), absl::StatusCode::kInvalidArgument) << text;
  return std::string(doc.status().message());
}

TEST(ParseJsonTest, ReadsValuesWithExactIntegers) {
  absl::StatusOr<Json> doc = ParseJson(
      R"({"w": {"shape": [2, 18446744073709551615], "name": "caf\u00e9"},)"
      R"( "neg": -9223372036854775808, "x": 0.5, "ok": true, "n": null})",
      3);
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ((*doc)["w"]["shape"][1].get<uint64_t>(),
            std::numeric_limits<uint64_t>::max());
  EXPECT_EQ((*doc)["w"]["name"].get<std::string>(), "caf\xc3\xa9");
  EXPECT_EQ((*doc)["neg"].get<int64_t>(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ((*doc)["x"].get<double>(), 0.5);
}

TEST(ParseJsonTest, SyntaxErrorsSayWhere) {
  const std::string error = ErrorOf("{nope}");
  EXPECT_NE(error.find("parse error at line 1, column "), std::string::npos)
      << error;
  for (const char* bad : {"", "[1,]", "{\"a\":1} x", "// c\n1", "[01]",
                          "\"\x01\"", "\"\xff\"", "[1e999]"}) {
    ErrorOf(bad);
  }
}

TEST(ParseJsonTest, BoundsTheNestingDepth) {
  EXPECT_TRUE(ParseJson("[[[1]]]", 3).ok());
  EXPECT_EQ(ErrorOf("[[[[1]]]]", 3), "nested deeper than 3 levels");
  EXPECT_EQ(ErrorOf(R"({"a":{"b":{"c":{}}}})", 3),
            "nested deeper than 3 levels");
  // Deep enough to overflow a recursive parser's stack: refused in a walk.
  EXPECT_EQ(ErrorOf(std::string(1 << 20, '[')), "nested deeper than 8 levels");
}

TEST(ParseJsonTest, RefusesDuplicateKeysAndIntegersPast64Bits) {
  EXPECT_EQ(ErrorOf(R"({"w":1,"v":2,"w":3})"), "duplicate key \"w\"");
  // The same key in different objects is fine.
  EXPECT_TRUE(ParseJson(R"({"a":{"w":1},"b":{"w":1}})", 2).ok());
  EXPECT_EQ(ErrorOf("[99999999999999999999999]"),
            "integer overflow: 99999999999999999999999");
  EXPECT_EQ(ErrorOf("-99999999999999999999"),
            "integer overflow: -99999999999999999999");
}

TEST(JsonTextTest, EscapesQuotesBackslashesAndControlCharacters) {
  OrderedJson j = OrderedJson::object();
  j["z"] = "a\"b\\c\nd\x01";
  j["a"] = "FMA's \xce\xbb";  // an apostrophe needs no escape; UTF-8 is kept
  EXPECT_EQ(JsonText(j), R"({"z":"a\"b\\c\nd\u0001","a":"FMA's )"
                         "\xce\xbb\"}");
  EXPECT_EQ(JsonText(Json::parse(R"({"z":1,"a":[2]})")),
            R"({"a":[2],"z":1})");
  EXPECT_EQ(JsonText(OrderedJson::array({1, 2}), 1), "[\n 1,\n 2\n]");
}

TEST(JsonTextTest, ReplacesInvalidUtf8InsteadOfThrowing) {
  EXPECT_EQ(JsonText(OrderedJson("ok\xff")), "\"ok\xef\xbf\xbd\"");
}

TEST(JsonNumberTest, RoundsToSignificantDigitsAndWritesWholeNumbersBare) {
  EXPECT_EQ(JsonText(JsonNumber(0.1f)), "0.100000001");
  EXPECT_EQ(JsonText(JsonNumber(0.1f, 6)), "0.1");
  EXPECT_EQ(JsonText(JsonNumber(0.0)), "0");
  EXPECT_EQ(JsonText(JsonNumber(-3.0)), "-3");
  EXPECT_EQ(JsonText(JsonNumber(42.5)), "42.5");
  EXPECT_EQ(JsonText(JsonNumber(1e-5)), "1e-05");
  EXPECT_EQ(JsonText(JsonNumber(std::nan(""))), "null");
  EXPECT_EQ(JsonText(JsonNumber(-std::numeric_limits<double>::infinity())),
            "null");
}

}  // namespace
}  // namespace dive
