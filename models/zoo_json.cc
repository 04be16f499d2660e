// Prints every ModelSpec of the zoo (models/zoo.h) as JSON, for the scripts
// that work beside the C++ code (the PyTorch reference in bench/ and
// models/): they read the recipes and sizes from here instead of keeping
// their own copies. models/zoo.py is the reader.
//
//   bazel run //models:zoo_json
//
//   {
//    "models": [
//     {
//      "name": "lenet",
//      "description": "...",
//      "recipe": {
//       "lr": 0.9,
//       "batch_size": 256,
//       "epochs": 10,
//       "input_size": 28
//      },
//      "min_input_size": 12,
//      "max_input_size": 512,
//      "quick_input_size": 28
//     },
//     ...
//
// Any of them trains with `bazel run //models:train -- --model=<name>`.
//
// Learning rates are written with 6 significant digits (every recipe's is
// exact in fewer).

#include <cstdio>
#include <utility>

#include "models/spec.h"
#include "models/zoo.h"
#include "tensor/json.h"

namespace dive::models {
namespace {

OrderedJson SpecJson(const ModelSpec& spec) {
  OrderedJson recipe = OrderedJson::object();
  recipe["lr"] = JsonNumber(spec.recipe.lr, 6);
  recipe["batch_size"] = spec.recipe.batch_size;
  recipe["epochs"] = spec.recipe.epochs;
  recipe["input_size"] = spec.recipe.input_size;
  OrderedJson j = OrderedJson::object();
  j["name"] = spec.name;
  j["description"] = spec.description;
  j["recipe"] = std::move(recipe);
  j["min_input_size"] = spec.min_input_size;
  j["max_input_size"] = spec.max_input_size;
  j["quick_input_size"] = spec.quick_input_size;
  return j;
}

}  // namespace
}  // namespace dive::models

int main() {
  dive::OrderedJson models = dive::OrderedJson::array();
  for (const dive::models::ModelSpec& spec : dive::models::AllModels()) {
    models.push_back(dive::models::SpecJson(spec));
  }
  dive::OrderedJson out = dive::OrderedJson::object();
  out["models"] = std::move(models);
  std::printf("%s\n", dive::JsonText(out, 1).c_str());
  return 0;
}
