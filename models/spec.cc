#include "models/spec.h"

#include <utility>

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

void SetSizeCheckedMake(
    ModelSpec& spec, std::string model, int64_t min, int64_t max,
    std::function<std::shared_ptr<nn::Module>(int64_t input_size)> build) {
  spec.min_input_size = min;
  spec.max_input_size = max;
  spec.make = [model = std::move(model), min, max, build = std::move(build)](
                  int64_t size) -> absl::StatusOr<std::shared_ptr<nn::Module>> {
    if (absl::Status s = CheckInputSize(model, size, min, max); !s.ok()) {
      return s;
    }
    return build(size);
  };
}

}  // namespace dive::models
