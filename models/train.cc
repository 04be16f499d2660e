// Trains any model of the zoo, by the name of its spec (models/zoo.h), with
// that spec's book recipe as the defaults and the flags of every trainer
// (train/trainer_main.h):
//   bazel run //models:train -- --model=mlp_dropout --out=/tmp/mlp_dropout
// What goes over the whole zoo by name (models/twin_roundtrip.sh) trains with
// this one binary; each models/<name>:train trains its own package's models.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "models/spec.h"
#include "models/zoo.h"
#include "train/trainer_main.h"

ABSL_FLAG(std::string, model, "lenet",
          "The zoo model to train, by name (models/zoo.h; an unknown name "
          "lists them).");

int main(int argc, char** argv) {
  return dive::train::TrainerMain(argc, argv, [] {
    // Called before the flags are parsed too, with the default (a model of
    // the zoo), so only a --model given on the command line can be unknown.
    const std::string name = absl::GetFlag(FLAGS_model);
    absl::StatusOr<dive::models::ModelSpec> spec =
        dive::models::FindModel(name);
    if (!spec.ok()) {
      std::fprintf(stderr, "error: --model: %s\n",
                   std::string(spec.status().message()).c_str());
      std::exit(1);
    }
    return *std::move(spec);
  });
}
