// Trains LeNet on Fashion-MNIST (d2l 6.6: lr 0.9, batch 256, 10 epochs):
//   bazel run //models/lenet:train -- --out=/tmp/lenet
#include "models/lenet/lenet.h"
#include "tools/trainer_main.h"

int main(int argc, char** argv) {
  return dive::tools::TrainerMain(argc, argv, dive::models::LeNetSpec);
}
