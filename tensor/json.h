// File: tensor/json.h
// -----------------------------------------------------------------------------
//
// `JsonQuote(s)`: `s` as a JSON string literal, for the few places that
// write JSON by hand (safetensors headers, the dashboard's API, the zoo's
// specs, bench/throughput's result line). Quotes and backslashes are
// escaped, control characters become \u00XX, everything else (UTF-8
// included) is copied as is:
//
//   JsonQuote("FMA's \"peak\"\n")  // "FMA's \"peak\"\u000a", with its quotes

#ifndef TENSOR_JSON_H_
#define TENSOR_JSON_H_

#include <string>

#include "absl/strings/string_view.h"

namespace dive {

std::string JsonQuote(absl::string_view s);

}  // namespace dive

#endif  // TENSOR_JSON_H_
