#include "tensor/json.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tensor/text.h"

namespace dive {
namespace {

// A SAX pass over the text that checks what nlohmann's parser lets through
// (depth, duplicate keys, integers past 64 bits) and keeps the first error,
// syntax errors included. It builds nothing and stops at the first problem,
// so a hostile document costs one bounded walk.
class StrictChecker final : public nlohmann::json_sax<Json> {
 public:
  explicit StrictChecker(int max_depth) : max_depth_(max_depth) {}

  const std::string& error() const { return error_; }

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t& literal) override {
    // Without a fraction or an exponent it is an integer that did not fit.
    if (literal.find_first_of(".eE") != string_t::npos) return true;
    return Fail(absl::StrCat("integer overflow: ", Printable(literal, 40)));
  }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys_.emplace_back();
    return Enter();
  }
  bool key(string_t& key) override {
    if (keys_.back().insert(key).second) return true;
    return Fail(absl::StrCat("duplicate key \"", Printable(key, 64), "\""));
  }
  bool end_object() override {
    keys_.pop_back();
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override { return Enter(); }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&,
                   const Json::exception& e) override {
    // "[json.exception.parse_error.101] parse error at line 1, column 2:
    // ...; last read: '<the input>'", without its tag; the input is bounded
    // and escaped by Printable.
    absl::string_view what = e.what();
    if (const size_t tag = what.find("] "); tag != absl::string_view::npos) {
      what.remove_prefix(tag + 2);
    }
    return Fail(Printable(what, 300));
  }

 private:
  bool Enter() {
    if (++depth_ <= max_depth_) return true;
    return Fail(absl::StrCat("nested deeper than ", max_depth_, " levels"));
  }
  bool Fail(std::string why) {
    error_ = std::move(why);
    return false;
  }

  const int max_depth_;
  int depth_ = 0;
  // The keys seen so far in each object being read, the innermost last.
  std::vector<std::set<std::string>> keys_;
  std::string error_;
};

}  // namespace

absl::StatusOr<Json> ParseJson(absl::string_view text, int max_depth) {
  StrictChecker checker(max_depth);
  if (!Json::sax_parse(text.begin(), text.end(), &checker)) {
    return absl::InvalidArgumentError(checker.error());
  }
  Json doc = Json::parse(text.begin(), text.end(), /*cb=*/nullptr,
                         /*allow_exceptions=*/false);
  if (doc.is_discarded()) {  // the same parser accepted it just before
    return absl::InternalError("JSON that passed its check did not parse");
  }
  return doc;
}

std::string JsonText(const Json& value, int indent) {
  return value.dump(indent, ' ', /*ensure_ascii=*/false,
                    Json::error_handler_t::replace);
}

std::string JsonText(const OrderedJson& value, int indent) {
  return value.dump(indent, ' ', /*ensure_ascii=*/false,
                    OrderedJson::error_handler_t::replace);
}

OrderedJson JsonNumber(double v, int digits) {
  if (!std::isfinite(v)) return nullptr;
  double rounded = v;
  if (!absl::SimpleAtod(absl::StrFormat("%.*g", digits, v), &rounded)) {
    rounded = v;
  }
  if (std::abs(rounded) < 0x1p53 && rounded == std::trunc(rounded)) {
    return static_cast<int64_t>(rounded);
  }
  return rounded;
}

}  // namespace dive
