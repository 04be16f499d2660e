// File: models/zoo.h
// -----------------------------------------------------------------------------
//
// Every architecture of the model zoo by name, for tools that pick a model at
// run time (`//models:train`, `//tools:eval`, the benchmarks). Each spec's
// constructor lives in its own package, models/<name>.
//
// Example:
//
//   absl::StatusOr<dive::models::ModelSpec> spec = dive::models::FindModel("resnet");
//   if (!spec.ok()) return spec.status();   // lists the known names

#ifndef MODELS_ZOO_H_
#define MODELS_ZOO_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/spec.h"

namespace dive::models {

// All specs, smallest model first: softmax, mlp, mlp_dropout, lenet,
// bn_lenet, alexnet, vgg, nin, googlenet, resnet, densenet.
const std::vector<ModelSpec>& AllModels();

// The spec named `name`, or NotFound listing the known names.
absl::StatusOr<ModelSpec> FindModel(const std::string& name);

}  // namespace dive::models

#endif  // MODELS_ZOO_H_
