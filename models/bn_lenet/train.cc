// Trains LeNet with batch normalization on Fashion-MNIST with the book's
// recipe (d2l 7.5; the numbers are in bn_lenet.cc):
//   bazel run //models/bn_lenet:train -- --out=/tmp/bn_lenet
#include "models/bn_lenet/bn_lenet.h"
#include "train/trainer_main.h"

int main(int argc, char** argv) {
  return dive::train::TrainerMain(argc, argv, dive::models::BnLeNetSpec);
}
