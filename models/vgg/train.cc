// Trains VGG-11 on Fashion-MNIST with the book's recipe (d2l 7.2, channels
// / 4; the numbers are in vgg.cc); --resize=32 (at least 32) for a faster
// CPU run:
//   bazel run //models/vgg:train -- --out=/tmp/vgg
//   bazel run //models/vgg:train -- --width_divisor=8 --resize=64
#include "absl/flags/flag.h"
#include "models/vgg/vgg.h"
#include "train/trainer_main.h"

ABSL_FLAG(int, width_divisor, 4,
          "Divide VGG-11's channel counts (64, 128, 256, 512, 512) by this "
          "(1: the full VGG-11; the book trains 4). Between 1 and 64.");

int main(int argc, char** argv) {
  return dive::train::TrainerMain(argc, argv, [] {
    return dive::models::VggSpec(absl::GetFlag(FLAGS_width_divisor));
  });
}
