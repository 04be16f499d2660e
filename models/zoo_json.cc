// Prints every ModelSpec of the zoo (models/zoo.h) as JSON, for the scripts
// that work beside the C++ code (the PyTorch reference in bench/ and
// models/): they read the recipes and sizes from here instead of keeping
// their own copies. models/zoo.py is the reader.
//
//   bazel run //models:zoo_json
//
//   {"models": [
//     {"name": "lenet", "description": "...",
//      "recipe": {"lr": 0.9, "batch_size": 256, "epochs": 10, "input_size":
//      28}, "min_input_size": 12, "max_input_size": 512, "quick_input_size":
//      28, "train_target": "//models/lenet:train", "train_flags": []},
//     ...]}
//
// Learning rates are written with 6 significant digits (every recipe's is
// exact in fewer).

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/spec.h"
#include "models/zoo.h"
#include "tensor/json.h"

namespace dive::models {
namespace {

std::string SpecJson(const ModelSpec& spec) {
  std::vector<std::string> flags;
  for (const std::string& flag : spec.train_flags)
    flags.push_back(JsonQuote(flag));
  const Recipe& r = spec.recipe;
  return absl::StrCat(
      "{\"name\": ", JsonQuote(spec.name),
      ", \"description\": ", JsonQuote(spec.description),
      ", \"recipe\": {\"lr\": ", r.lr, ", \"batch_size\": ", r.batch_size,
      ", \"epochs\": ", r.epochs, ", \"input_size\": ", r.input_size,
      "}, \"min_input_size\": ", spec.min_input_size,
      ", \"max_input_size\": ", spec.max_input_size,
      ", \"quick_input_size\": ", spec.quick_input_size,
      ", \"train_target\": ", JsonQuote(spec.train_target),
      ", \"train_flags\": [", absl::StrJoin(flags, ", "), "]}");
}

}  // namespace
}  // namespace dive::models

int main() {
  std::vector<std::string> specs;
  for (const dive::models::ModelSpec& spec : dive::models::AllModels()) {
    specs.push_back(dive::models::SpecJson(spec));
  }
  std::printf("{\"models\": [\n  %s\n]}\n",
              absl::StrJoin(specs, ",\n  ").c_str());
  return 0;
}
