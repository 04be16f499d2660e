// File: models/nin/nin.h
// -----------------------------------------------------------------------------
//
// Network in Network (Lin et al., 2013; d2l 8.3): blocks of a convolution
// followed by two 1x1 convolutions ("per-pixel MLPs"), max pooling between
// them, and no fully connected layer at all: the last block has one output
// channel per class and global average pooling turns each channel into a
// logit. Adapted to Fashion-MNIST as in the book (1 input channel, 10
// classes, 224x224 inputs).
//
// Weights are initialized as the book's `train_ch6` does: Xavier-uniform for
// every Conv2d weight, PyTorch's default for the biases.
//
// PyTorch twin (`nin()` in models/pytorch_twins.py), 1,992,166 parameters:
//
//   def nin_block(in_channels, out_channels, kernel_size, strides, padding):
//       return nn.Sequential(
//           nn.Conv2d(in_channels, out_channels, kernel_size, strides,
//                     padding), nn.ReLU(),
//           nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
//           nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU())
//
//   net = nn.Sequential(
//       nin_block(1, 96, kernel_size=11, strides=4, padding=0),
//       nn.MaxPool2d(3, stride=2),
//       nin_block(96, 256, kernel_size=5, strides=1, padding=2),
//       nn.MaxPool2d(3, stride=2),
//       nin_block(256, 384, kernel_size=3, strides=1, padding=1),
//       nn.MaxPool2d(3, stride=2),
//       nn.Dropout(0.5),
//       nin_block(384, 10, kernel_size=3, strides=1, padding=1),
//       nn.AdaptiveAvgPool2d((1, 1)),
//       nn.Flatten())                 # keys "0.0.weight", ..., "7.4.bias"
//
// Input sizes: 67 is the smallest for which every layer has a non-empty
// output (the third max pooling needs a 3x3 input); 224 is the book's.
//
// Example:
//
//   auto net = dive::models::NiN();     // [N, 1, 224, 224] -> [N, 10]

#ifndef MODELS_NIN_NIN_H_
#define MODELS_NIN_NIN_H_

#include <cstdint>
#include <memory>

#include "models/spec.h"
#include "nn/sequential.h"

namespace dive::models {

// The smallest input side NiN accepts.
inline constexpr int64_t kNinMinInputSize = 67;

// NinBlock()
//
// The book's nin_block: Conv2d(in, out, kernel, stride, padding), ReLU, then
// twice Conv2d(out, out, 1), ReLU.
std::shared_ptr<nn::Sequential> NinBlock(int64_t in_channels,
                                         int64_t out_channels,
                                         int64_t kernel_size, int64_t stride,
                                         int64_t padding);

// NiN()
//
// The book's net, Xavier-initialized.
std::shared_ptr<nn::Sequential> NiN();

// The spec "nin": the book's recipe (its numbers are in nin.cc).
ModelSpec NinSpec();

}  // namespace dive::models

#endif  // MODELS_NIN_NIN_H_
