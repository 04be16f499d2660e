// File: models/vgg/vgg.h
// -----------------------------------------------------------------------------
//
// VGG (Simonyan & Zisserman, 2014) as in d2l 7.2: blocks of 3x3 padded
// convolutions with ReLU, each block ending in a 2x2 max pooling that halves
// the resolution, then the classifier of AlexNet (two 4096-unit fully
// connected layers with Dropout(0.5)). `Vgg11` uses VGG-11's conv_arch
// ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)) with every channel count
// divided by `divisor`; the book trains ratio 4 on Fashion-MNIST. Every
// Linear and Conv2d weight is Xavier-uniform (train_ch6's
// `net.apply(init_weights)`); biases keep PyTorch's default initialization.
//
// The first fully connected layer takes out_channels x k x k features with
// k = input_size / 32 (7 at 224, as in the book), so inputs down to
// 32x32 (k = 1) run on a CPU.
//
// PyTorch twin (models/pytorch_twins.py, `vgg(input_size, divisor)`):
//
//   def vgg_block(num_convs, in_channels, out_channels):
//       layers = []
//       for _ in range(num_convs):
//           layers.append(nn.Conv2d(in_channels, out_channels,
//                                   kernel_size=3, padding=1))
//           layers.append(nn.ReLU())
//           in_channels = out_channels
//       layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
//       return nn.Sequential(*layers)
//
//   nn.Sequential(*conv_blks, nn.Flatten(),
//       nn.Linear(out_channels * 7 * 7, 4096), nn.ReLU(), nn.Dropout(0.5),
//       nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
//       nn.Linear(4096, 10))
//   # keys "0.0.*", "1.0.*", "2.0.*", "2.2.*", "3.0.*", "3.2.*", "4.0.*",
//   # "4.2.*", "6.*", "9.*", "12.*"; 43093322 parameters (divisor 4, 224)
//
// Example:
//
//   auto net = dive::models::Vgg11();         // [N, 1, 224, 224] -> [N, 10]
//   auto small = dive::models::Vgg11(/*divisor=*/8, /*input_size=*/32);

#ifndef MODELS_VGG_VGG_H_
#define MODELS_VGG_VGG_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "models/spec.h"
#include "nn/sequential.h"

namespace dive::models {

// (number of convolutions, output channels) of each VGG block.
using VggArch = std::vector<std::pair<int, int64_t>>;

// VGG-11's conv_arch: ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)).
VggArch Vgg11Arch();

// Five halvings: 32 -> 16 -> 8 -> 4 -> 2 -> 1 is the smallest input whose
// last block still has a non-empty output.
inline constexpr int64_t kVggMinInputSize = 32;
inline constexpr int64_t kVggMaxInputSize = 512;
// Channel divisors keep at least one channel in the first block (64 / 64).
inline constexpr int kVggMaxDivisor = 64;

// VggBlock()
//
// `num_convs` Conv2d(3x3, padding 1) + ReLU pairs, then MaxPool2d(2, 2);
// children "0", "1", ... as the book's `vgg_block`.
std::shared_ptr<nn::Sequential> VggBlock(int num_convs, int64_t in_channels,
                                         int64_t out_channels);

// Vgg()
//
// The book's `vgg(conv_arch)` for 1-channel input_size x input_size images:
// one `VggBlock` per entry, Flatten, and the 4096-4096-10 classifier.
// CHECK-fails on an empty arch, non-positive entries, or an input_size
// smaller than 2^(number of blocks) or above kVggMaxInputSize.
std::shared_ptr<nn::Sequential> Vgg(const VggArch& conv_arch,
                                    int64_t input_size = 224);

// Vgg11()
//
// VGG-11 with every channel count divided (rounding down) by `divisor`, in
// [1, kVggMaxDivisor]; the book's small_conv_arch is divisor 4. CHECK-fails
// on a bad divisor or input size (use `VggSpec(divisor).make` for a status).
std::shared_ptr<nn::Sequential> Vgg11(int divisor = 4,
                                      int64_t input_size = 224);

// The spec "vgg": the book's recipe (its numbers are in vgg.cc). `make`
// returns InvalidArgument for an input size outside [32, 512] or a divisor
// outside [1, 64].
ModelSpec VggSpec(int divisor = 4);

}  // namespace dive::models

#endif  // MODELS_VGG_VGG_H_
