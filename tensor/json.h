// File: tensor/json.h
// -----------------------------------------------------------------------------
//
// dive's one way to read and write JSON: nlohmann/json (Debian's
// nlohmann-json3-dev, @nlohmann_json), with what every caller needs around
// it. Nothing else in dive spells JSON by hand.
//
//   * `Json` is what `ParseJson` returns (objects keep their keys sorted);
//     `OrderedJson` keeps keys in insertion order, for output whose order is
//     fixed (a safetensors header, whose checksum covers its text; the
//     dashboard's API).
//   * `ParseJson` reads untrusted text strictly and never throws: RFC 8259
//     only (UTF-8 strings, no comments), a bounded nesting depth, no key
//     twice in one object (two readers could pick different ones), and
//     integers that fit 64 bits (nlohmann would silently read a longer one
//     as an inexact double). Errors say what and, for syntax, where.
//   * `JsonText` writes compact (or indented) text and never throws:
//     control characters are escaped, invalid UTF-8 becomes U+FFFD.
//   * `JsonNumber` rounds a double to a few significant digits for output
//     (0.1f is 0.1, not 0.10000000149011612); NaN and infinities are null.
//
// Example:
//
//   absl::StatusOr<Json> doc = ParseJson(R"({"shape": [2, 3]})", 4);
//   if (!doc.ok()) return doc.status();  // "... at line 1, column 9: ..."
//   OrderedJson out = OrderedJson::object();
//   out["title"] = "LeNet \"5\"\n";
//   out["lr"] = JsonNumber(0.1f, 6);
//   JsonText(out);  // {"title":"LeNet \"5\"\n","lr":0.1}

#ifndef TENSOR_JSON_H_
#define TENSOR_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace dive {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

// ParseJson()
//
// `text` as one JSON value, with arrays and objects nested at most
// `max_depth` deep (the outermost is depth 1). InvalidArgument otherwise,
// e.g. "parse error at line 1, column 2: syntax error while parsing object
// key - invalid literal; last read: '{n'; expected string literal",
// "duplicate key \"w\"", "nested deeper than 16 levels", "integer overflow:
// 99999999999999999999".
absl::StatusOr<Json> ParseJson(absl::string_view text, int max_depth);

// JsonText()
//
// `value` as JSON text: compact (no spaces) when `indent` < 0, else one
// element a line, indented by `indent` spaces a level.
std::string JsonText(const Json& value, int indent = -1);
std::string JsonText(const OrderedJson& value, int indent = -1);

// JsonNumber()
//
// `v` rounded to `digits` significant digits (as "%.<digits>g" prints it),
// an integer when that is whole; null when `v` is NaN or infinite (JSON has
// neither).
OrderedJson JsonNumber(double v, int digits = 9);

}  // namespace dive

#endif  // TENSOR_JSON_H_
