#include "models/spec.h"

#include "absl/strings/str_cat.h"

namespace dive::models {

absl::Status CheckInputSize(const std::string& model, int64_t input_size,
                            int64_t min, int64_t max) {
  if (input_size >= min && input_size <= max) return absl::OkStatus();
  if (min == max) {
    return absl::InvalidArgumentError(absl::StrCat(
        model, " takes ", min, "x", min, " inputs only, got ", input_size));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(model, " needs an input size between ", min, " and ", max,
                   ", got ", input_size));
}

}  // namespace dive::models
