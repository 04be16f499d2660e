// Trains ResNet-18 on Fashion-MNIST resized to 96x96:
//   bazel run //models/resnet:train -- --epochs=10 --out=/tmp/resnet
#include "models/resnet/resnet.h"
#include "train/trainer_main.h"

int main(int argc, char** argv) {
  return dive::train::TrainerMain(argc, argv, dive::models::ResNetSpec);
}
