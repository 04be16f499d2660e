// Writes the starting point of the step-parity check (models/step_parity.h)
// for every zoo model, as DIR/<model>.safetensors: the initial state dict
// ("state.<key>"), the batch ("images", "labels") and, as metadata, the
// optimizer settings, so that models/make_step_parity_golden.py takes every
// number from here.
//
//   bazel run //models:step_parity_case -- --out=/tmp/parity [--models=lenet]

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "models/spec.h"
#include "models/step_parity.h"
#include "models/zoo.h"
#include "tensor/safetensors.h"

ABSL_FLAG(std::string, out, "", "directory for <model>.safetensors (exists)");
ABSL_FLAG(std::vector<std::string>, models, {},
          "comma-separated zoo names (default: all)");

namespace dive::models {
namespace {

absl::Status WriteCase(const ModelSpec& spec, const std::string& dir) {
  const ParityCase c = MakeParityCase(spec);
  SafetensorsFile file;
  for (const auto& [key, tensor] : c.net->StateDict()) {
    file.tensors["state." + key] = tensor;
  }
  file.tensors["images"] = c.images;
  file.tensors["labels"] = c.labels;
  file.metadata = {
      {"model", spec.name},
      {"input_size", absl::StrCat(spec.quick_input_size)},
      {"steps", absl::StrCat(kParitySteps)},
      {"samples", absl::StrCat(kParitySamples)},
      {"sgd.lr", absl::StrCat(kParitySgdLr)},
      {"sgd.momentum", absl::StrCat(kParityMomentum)},
      {"sgd.weight_decay", absl::StrCat(kParityWeightDecay)},
      {"adam.lr", absl::StrCat(kParityAdamLr)},
      {"adam.eps", absl::StrCat(kParityAdamEps)},
  };
  return SaveSafetensors(absl::StrCat(dir, "/", spec.name, ".safetensors"),
                         file);
}

int Main() {
  const std::string dir = absl::GetFlag(FLAGS_out);
  if (dir.empty()) {
    std::fprintf(stderr, "step_parity_case: --out=DIR is required\n");
    return 2;
  }
  std::vector<ModelSpec> specs;
  if (absl::GetFlag(FLAGS_models).empty()) {
    specs = AllModels();
  } else {
    for (const std::string& name : absl::GetFlag(FLAGS_models)) {
      absl::StatusOr<ModelSpec> spec = FindModel(name);
      if (!spec.ok()) {
        std::fprintf(stderr, "step_parity_case: %s\n",
                     spec.status().ToString().c_str());
        return 2;
      }
      specs.push_back(*spec);
    }
  }
  for (const ModelSpec& spec : specs) {
    if (absl::Status s = WriteCase(spec, dir); !s.ok()) {
      std::fprintf(stderr, "step_parity_case: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace dive::models

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dive::models::Main();
}
