// File: models/resnet/resnet.h
// -----------------------------------------------------------------------------
//
// ResNet-18 (He et al., 2016; d2l 8.6): a 7x7 convolution stem, then four
// stages of two residual blocks each (64, 128, 256, 512 channels; every stage
// after the first halves the resolution in its first block, whose shortcut
// is a strided 1x1 convolution), global average pooling and one Linear
// layer. Adapted to Fashion-MNIST as in the book: 1 input channel, 10
// classes, 96x96 inputs.
//
// Weights are initialized as the book's `train_ch6` does: Xavier-uniform for
// every Linear and Conv2d weight, PyTorch's default for the biases (and
// BatchNorm's gamma = 1, beta = 0).
//
// PyTorch twin (`resnet18()` in models/pytorch_twins.py), 11,178,378
// parameters; its state_dict also holds 17 BatchNorm layers' running_mean,
// running_var and num_batches_tracked (127 keys in all):
//
//   class Residual(nn.Module):
//       def __init__(self, input_channels, num_channels, use_1x1conv=False,
//                    strides=1):
//           self.conv1 = nn.Conv2d(input_channels, num_channels,
//                                  kernel_size=3, padding=1, stride=strides)
//           self.conv2 = nn.Conv2d(num_channels, num_channels,
//                                  kernel_size=3, padding=1)
//           if use_1x1conv:
//               self.conv3 = nn.Conv2d(input_channels, num_channels,
//                                      kernel_size=1, stride=strides)
//           else:
//               self.conv3 = None
//           self.bn1 = nn.BatchNorm2d(num_channels)
//           self.bn2 = nn.BatchNorm2d(num_channels)
//       def forward(self, X):
//           Y = F.relu(self.bn1(self.conv1(X)))
//           Y = self.bn2(self.conv2(Y))
//           if self.conv3:
//               X = self.conv3(X)
//           Y += X
//           return F.relu(Y)
//
//   net = nn.Sequential(b1, b2, b3, b4, b5, nn.AdaptiveAvgPool2d((1, 1)),
//                       nn.Flatten(), nn.Linear(512, 10))
//   # keys "0.0.weight", "0.1.running_mean", "1.0.conv1.weight",
//   # "2.0.conv3.weight", ..., "7.weight", "7.bias"
//
// Input sizes: every convolution and pooling is padded enough to give at
// least a 1x1 output, so any size from 1 up works (96 is the book's). In
// training mode BatchNorm needs more than one value per channel, i.e. a
// batch of at least 2 at the smallest sizes.
//
// Example:
//
//   auto net = dive::models::ResNet18();    // [N, 1, 96, 96] -> [N, 10]
//   dive::models::Residual blk(3, 6, /*use_1x1conv=*/true, /*strides=*/2);
//   Variable y = blk(x);                    // [4, 3, 6, 6] -> [4, 6, 3, 3]

#ifndef MODELS_RESNET_RESNET_H_
#define MODELS_RESNET_RESNET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "models/spec.h"
#include "nn/batch_norm.h"
#include "nn/conv2d.h"
#include "nn/module.h"
#include "nn/sequential.h"

namespace dive::models {

// The smallest input side ResNet-18 accepts.
inline constexpr int64_t kResNetMinInputSize = 1;

// Residual
//
// The book's residual block; children conv1, conv2, conv3 (only with
// `use_1x1conv`), bn1, bn2, registered in that order as in PyTorch:
//
//   Y = relu(bn1(conv1(X)));  Y = bn2(conv2(Y));
//   return relu(Y + (conv3 ? conv3(X) : X))
//
// conv1 and conv3 have stride `strides`. Without the 1x1 convolution the
// input must already have `num_channels` channels and `strides` must be 1
// (the shapes of Y and X must match; Forward CHECK-fails naming both).
class Residual : public nn::Module {
 public:
  Residual(int64_t input_channels, int64_t num_channels,
           bool use_1x1conv = false, int64_t strides = 1);

  autograd::Variable Forward(const autograd::Variable& x) override;
  // bn1 takes its ReLU; in evaluation mode bn1 and the ReLU fold into conv1,
  // and bn2, the shortcut's add and the last ReLU into conv2
  // (nn::Module::Fuse).
  void Fuse() override;
  // In fused evaluation, conv1 and conv3 on the block's input and conv2 on
  // conv1's output adding the shortcut: the block as three stages of a
  // chain (two without conv3), which Forward and a Sequential of blocks run
  // as one (nn::TryConvChain) where oneDNN takes it.
  bool AppendToConvChain(std::vector<nn::ChainedConv>* chain) const override;
  // "Residual(64, 128, use_1x1conv=true, strides=2)".
  std::string Describe() const override;

 private:
  // The block's stages, reading value `x` of a chain.
  void AppendStages(int x, std::vector<nn::ChainedConv>* chain) const;

  int64_t input_channels_;
  int64_t num_channels_;
  int64_t strides_;
  std::shared_ptr<nn::Conv2d> conv1_;
  std::shared_ptr<nn::Conv2d> conv2_;
  std::shared_ptr<nn::Conv2d> conv3_;  // null without use_1x1conv
  std::shared_ptr<nn::BatchNorm2d> bn1_;
  std::shared_ptr<nn::BatchNorm2d> bn2_;
};

// ResnetBlock()
//
// The book's resnet_block: `num_residuals` Residual blocks, the first one
// with a 1x1 convolution and stride 2 unless `first_block` (ResNet's first
// stage keeps the stem's resolution and channels).
std::vector<std::shared_ptr<nn::Module>> ResnetBlock(int64_t input_channels,
                                                     int64_t num_channels,
                                                     int64_t num_residuals,
                                                     bool first_block = false);

// ResNet18()
//
// The book's net, Xavier-initialized.
std::shared_ptr<nn::Sequential> ResNet18();

// The spec "resnet": the book's recipe (its numbers are in resnet.cc).
ModelSpec ResNetSpec();

}  // namespace dive::models

#endif  // MODELS_RESNET_RESNET_H_
