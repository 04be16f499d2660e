// File: models/lenet/lenet.h
// -----------------------------------------------------------------------------
//
// LeNet-5 (LeCun et al., 1998) as in d2l 6.6: two convolution blocks
// (5x5 convolution, sigmoid, 2x2 average pooling) and three fully connected
// layers, for 1-channel 28x28 images and 10 classes. Every Linear and Conv2d
// weight is Xavier-uniform, applied after construction like the book's
// `net.apply(init_weights)` in train_ch6; biases keep PyTorch's default
// initialization.
//
// Other input sizes s >= 12 are supported by sizing the first fully connected
// layer for the 16 x k x k feature map, k = (s / 2 - 4) / 2 (k = 5 at 28).
//
// PyTorch twin (models/pytorch_twins.py, `lenet`):
//
//   nn.Sequential(
//       nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
//       nn.AvgPool2d(kernel_size=2, stride=2),
//       nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
//       nn.AvgPool2d(kernel_size=2, stride=2),
//       nn.Flatten(),
//       nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
//       nn.Linear(120, 84), nn.Sigmoid(),
//       nn.Linear(84, 10))
//   # keys "0.*", "3.*", "7.*", "9.*", "11.*"; 61706 parameters
//
// Example:
//
//   auto net = dive::models::LeNet();         // [N, 1, 28, 28] -> [N, 10]
//   std::cout << net->Summary({1, 1, 28, 28});

#ifndef MODELS_LENET_LENET_H_
#define MODELS_LENET_LENET_H_

#include <cstdint>
#include <memory>

#include "models/spec.h"
#include "nn/sequential.h"

namespace dive::models {

// The smallest input side for which every layer has a non-empty output
// (12 -> 12 -> 6 -> 2 -> 1).
inline constexpr int64_t kLeNetMinInputSize = 12;
inline constexpr int64_t kLeNetMaxInputSize = 512;

// LeNet()
//
// The book's LeNet for input_size x input_size images; CHECK-fails outside
// [kLeNetMinInputSize, kLeNetMaxInputSize] (use `LeNetSpec().make` for a
// status instead).
std::shared_ptr<nn::Sequential> LeNet(int64_t input_size = 28);

// The spec "lenet": the book's recipe (its numbers are in lenet.cc).
ModelSpec LeNetSpec();

}  // namespace dive::models

#endif  // MODELS_LENET_LENET_H_
