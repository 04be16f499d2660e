// Trains AlexNet on Fashion-MNIST with the book's recipe (d2l 7.1; the
// numbers are in alexnet.cc); --resize=96 (at least 65) for a faster CPU run:
//   bazel run //models/alexnet:train -- --out=/tmp/alexnet
#include "models/alexnet/alexnet.h"
#include "train/trainer_main.h"

int main(int argc, char** argv) {
  return dive::train::TrainerMain(argc, argv, dive::models::AlexNetSpec);
}
