// Trains the book's MLP (or, with --dropout, the dropout MLP) on
// Fashion-MNIST:
//   bazel run //models/mlp:train -- --epochs=10 --out=/tmp/mlp
//   bazel run //models/mlp:train -- --dropout --out=/tmp/mlp_dropout
#include "absl/flags/flag.h"
#include "models/mlp/mlp.h"
#include "train/trainer_main.h"

ABSL_FLAG(bool, dropout, false,
          "Train the dropout MLP 784-256-256-10 (d2l 4.6) instead of the "
          "MLP 784-256-10 (d2l 4.3), each with its recipe.");

int main(int argc, char** argv) {
  return dive::train::TrainerMain(argc, argv, [] {
    return absl::GetFlag(FLAGS_dropout) ? dive::models::MlpDropoutSpec()
                                        : dive::models::MlpSpec();
  });
}
