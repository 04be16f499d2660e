// Trains DenseNet on Fashion-MNIST resized to 96x96:
//   bazel run //models/densenet:train -- --epochs=10 --out=/tmp/densenet
#include "models/densenet/densenet.h"
#include "train/trainer_main.h"

int main(int argc, char** argv) {
  return dive::train::TrainerMain(argc, argv, dive::models::DenseNetSpec);
}
