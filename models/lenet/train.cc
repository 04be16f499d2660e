// Trains LeNet on Fashion-MNIST with the book's recipe (d2l 6.6; the numbers
// are in lenet.cc):
//   bazel run //models/lenet:train -- --out=/tmp/lenet
#include "models/lenet/lenet.h"
#include "train/trainer_main.h"

int main(int argc, char** argv) {
  return dive::train::TrainerMain(argc, argv, dive::models::LeNetSpec);
}
