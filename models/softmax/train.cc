// Trains softmax regression on Fashion-MNIST:
//   bazel run //models/softmax:train -- --epochs=10 --out=/tmp/softmax
#include "models/softmax/softmax.h"
#include "tools/trainer_main.h"

int main(int argc, char** argv) {
  return dive::tools::TrainerMain(argc, argv, dive::models::SoftmaxSpec);
}
