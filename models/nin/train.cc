// Trains NiN on Fashion-MNIST resized to 224x224:
//   bazel run //models/nin:train -- --epochs=10 --out=/tmp/nin
#include "models/nin/nin.h"
#include "train/trainer_main.h"

int main(int argc, char** argv) {
  return dive::train::TrainerMain(argc, argv, dive::models::NinSpec);
}
