// File: models/bn_lenet/bn_lenet.h
// -----------------------------------------------------------------------------
//
// LeNet with batch normalization, the concise version of d2l 7.5 (8.5 in
// later editions): a BatchNorm after every convolution and every hidden fully
// connected layer, before the sigmoid. Unlike the LeNet of d2l 6.6 the first
// convolution has no padding, so the feature map before the classifier is
// 16 x 4 x 4 = 256 at 28x28. Every Linear and Conv2d weight is
// Xavier-uniform (train_ch6's `net.apply(init_weights)`); biases keep
// PyTorch's default initialization, BatchNorm starts at gamma 1, beta 0.
//
// Other input sizes s >= 16 are supported by sizing the first fully connected
// layer for the 16 x k x k feature map, k = ((s - 4) / 2 - 4) / 2.
//
// PyTorch twin (models/pytorch_twins.py, `bn_lenet`):
//
//   nn.Sequential(
//       nn.Conv2d(1, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(),
//       nn.AvgPool2d(kernel_size=2, stride=2),
//       nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(),
//       nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
//       nn.Linear(256, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
//       nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(),
//       nn.Linear(84, 10))
//   # parameters "0.*", "1.*", "4.*", "5.*", "9.*", "10.*", "12.*", "13.*",
//   # "15.*"; buffers "1.running_mean", ..., "13.num_batches_tracked";
//   # 44878 parameters
//
// Example:
//
//   auto net = dive::models::BnLeNet();       // [N, 1, 28, 28] -> [N, 10]
//   net->Eval();                              // use the running statistics

#ifndef MODELS_BN_LENET_BN_LENET_H_
#define MODELS_BN_LENET_BN_LENET_H_

#include <cstdint>
#include <memory>

#include "models/spec.h"
#include "nn/sequential.h"

namespace dive::models {

// The smallest input side for which every layer has a non-empty output
// (16 -> 12 -> 6 -> 2 -> 1).
inline constexpr int64_t kBnLeNetMinInputSize = 16;
inline constexpr int64_t kBnLeNetMaxInputSize = 512;

// BnLeNet()
//
// The book's BatchNorm LeNet for input_size x input_size images;
// CHECK-fails outside [kBnLeNetMinInputSize, kBnLeNetMaxInputSize] (use
// `BnLeNetSpec().make` for a status instead).
std::shared_ptr<nn::Sequential> BnLeNet(int64_t input_size = 28);

// The spec "bn_lenet": the book's recipe (its numbers are in bn_lenet.cc).
ModelSpec BnLeNetSpec();

}  // namespace dive::models

#endif  // MODELS_BN_LENET_BN_LENET_H_
