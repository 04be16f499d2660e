// Trains softmax regression on Fashion-MNIST:
//   bazel run //models/softmax:train -- --epochs=10 --out=/tmp/softmax
#include "models/softmax/softmax.h"
#include "train/trainer_main.h"

int main(int argc, char** argv) {
  return dive::train::TrainerMain(argc, argv, dive::models::SoftmaxSpec);
}
