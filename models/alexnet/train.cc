// Trains AlexNet on Fashion-MNIST resized to 224x224 (d2l 7.1: lr 0.01,
// batch 128, 10 epochs); --resize=96 (at least 65) for a faster CPU run:
//   bazel run //models/alexnet:train -- --out=/tmp/alexnet
#include "models/alexnet/alexnet.h"
#include "tools/trainer_main.h"

int main(int argc, char** argv) {
  return dive::tools::TrainerMain(argc, argv, dive::models::AlexNetSpec);
}
