// File: models/alexnet/alexnet.h
// -----------------------------------------------------------------------------
//
// AlexNet (Krizhevsky et al., 2012) as in d2l 7.1: five convolutions (11x11
// stride 4, 5x5, three 3x3) with ReLU and three 3x3 stride-2 max poolings,
// then two 4096-unit fully connected layers with Dropout(0.5), for 1-channel
// 224x224 images (Fashion-MNIST upsampled) and 10 classes. Every Linear and
// Conv2d weight is Xavier-uniform (train_ch6's `net.apply(init_weights)`);
// biases keep PyTorch's default initialization.
//
// The first fully connected layer takes 256 x k x k features, k = 5 at 224
// (6400, as in the book); it is sized from the input, so smaller inputs
// (down to kAlexNetMinInputSize = 65, k = 1) run on a CPU with the same
// convolutional weights.
//
// PyTorch twin (models/pytorch_twins.py, `alexnet`):
//
//   nn.Sequential(
//       nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
//       nn.MaxPool2d(kernel_size=3, stride=2),
//       nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
//       nn.MaxPool2d(kernel_size=3, stride=2),
//       nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
//       nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
//       nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
//       nn.MaxPool2d(kernel_size=3, stride=2),
//       nn.Flatten(),
//       nn.Linear(6400, 4096), nn.ReLU(), nn.Dropout(p=0.5),
//       nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=0.5),
//       nn.Linear(4096, 10))
//   # keys "0.*", "3.*", "6.*", "8.*", "10.*", "14.*", "17.*", "20.*";
//   # 46764746 parameters at 224, 21598922 at 65..96
//
// Example:
//
//   auto net = dive::models::AlexNet();       // [N, 1, 224, 224] -> [N, 10]
//   auto small = dive::models::AlexNet(96);   // [N, 1, 96, 96] -> [N, 10]

#ifndef MODELS_ALEXNET_ALEXNET_H_
#define MODELS_ALEXNET_ALEXNET_H_

#include <cstdint>
#include <memory>

#include "models/spec.h"
#include "nn/sequential.h"

namespace dive::models {

// The smallest input side for which every layer has a non-empty output:
// 65 -> conv 15 -> pool 7 -> conv 7 -> pool 3 -> convs 3 -> pool 1. At 64
// the last pooling would get a 2x2 map.
inline constexpr int64_t kAlexNetMinInputSize = 65;
inline constexpr int64_t kAlexNetMaxInputSize = 512;

// AlexNetFeatureSide()
//
// The side k of the 256 x k x k feature map entering the classifier for
// input_size x input_size images (5 at 224); 0 or less when too small.
int64_t AlexNetFeatureSide(int64_t input_size);

// AlexNet()
//
// The book's AlexNet for input_size x input_size images; CHECK-fails outside
// [kAlexNetMinInputSize, kAlexNetMaxInputSize] (use `AlexNetSpec().make` for
// a status instead).
std::shared_ptr<nn::Sequential> AlexNet(int64_t input_size = 224);

// The spec "alexnet": the book's recipe (its numbers are in alexnet.cc).
ModelSpec AlexNetSpec();

}  // namespace dive::models

#endif  // MODELS_ALEXNET_ALEXNET_H_
