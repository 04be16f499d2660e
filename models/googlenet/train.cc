// Trains GoogLeNet on Fashion-MNIST resized to 96x96:
//   bazel run //models/googlenet:train -- --epochs=10 --out=/tmp/googlenet
#include "models/googlenet/googlenet.h"
#include "train/trainer_main.h"

int main(int argc, char** argv) {
  return dive::train::TrainerMain(argc, argv, dive::models::GoogLeNetSpec);
}
