// File: models/densenet/densenet.h
// -----------------------------------------------------------------------------
//
// DenseNet (Huang et al., 2017; d2l 8.7): ResNet's stem, then four dense
// blocks joined by transition blocks, batch normalization, global average
// pooling and one Linear layer. Inside a dense block every conv_block
// (BatchNorm, ReLU, 3x3 convolution with `growth_rate` outputs) sees the
// concatenation of the block's input and all earlier outputs; a transition
// block (BatchNorm, ReLU, 1x1 convolution, 2x2 average pooling) halves both
// the channels and the resolution. Adapted to Fashion-MNIST as in the book:
// 1 input channel, 10 classes, 96x96 inputs.
//
// Weights are initialized as the book's `train_ch6` does: Xavier-uniform for
// every Linear and Conv2d weight, PyTorch's default for the biases (and
// BatchNorm's gamma = 1, beta = 0).
//
// PyTorch twin (`densenet()` in models/pytorch_twins.py), 758,226
// parameters; its state_dict also holds 21 BatchNorm layers' running_mean,
// running_var and num_batches_tracked (147 keys in all):
//
//   def conv_block(input_channels, num_channels):
//       return nn.Sequential(
//           nn.BatchNorm2d(input_channels), nn.ReLU(),
//           nn.Conv2d(input_channels, num_channels, kernel_size=3,
//                     padding=1))
//
//   class DenseBlock(nn.Module):
//       def __init__(self, num_convs, input_channels, num_channels):
//           layer = []
//           for i in range(num_convs):
//               layer.append(conv_block(
//                   num_channels * i + input_channels, num_channels))
//           self.net = nn.Sequential(*layer)
//       def forward(self, X):
//           for blk in self.net:
//               Y = blk(X)
//               X = torch.cat((X, Y), dim=1)
//           return X
//
//   def transition_block(input_channels, num_channels):
//       return nn.Sequential(
//           nn.BatchNorm2d(input_channels), nn.ReLU(),
//           nn.Conv2d(input_channels, num_channels, kernel_size=1),
//           nn.AvgPool2d(kernel_size=2, stride=2))
//
//   net = nn.Sequential(b1, *blks, nn.BatchNorm2d(num_channels), nn.ReLU(),
//                       nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
//                       nn.Linear(num_channels, 10))
//   # keys "0.0.weight", "1.net.0.0.running_mean", "1.net.3.2.weight",
//   # "2.2.weight", ..., "8.running_var", "12.weight", "12.bias"
//
// Input sizes: at least 29. The stem maps 29x29 to 8x8, which the three
// transition blocks' 2x2 average pooling halves to 1x1; 28x28 would leave the
// last one a 1x1 map to pool. 96 is the book's.
//
// Example:
//
//   auto net = dive::models::DenseNet();      // [N, 1, 96, 96] -> [N, 10]
//   dive::models::DenseBlock blk(2, 3, 10);
//   Variable y = blk(x);                      // [4, 3, 8, 8] -> [4, 23, 8, 8]

#ifndef MODELS_DENSENET_DENSENET_H_
#define MODELS_DENSENET_DENSENET_H_

#include <cstdint>
#include <memory>
#include <string>

#include "autograd/variable.h"
#include "models/spec.h"
#include "nn/module.h"
#include "nn/sequential.h"

namespace dive::models {

// The smallest input side DenseNet accepts.
inline constexpr int64_t kDenseNetMinInputSize = 29;

// ConvBlock()
//
// The book's conv_block: BatchNorm2d(in), ReLU, Conv2d(in, out, 3, pad 1).
std::shared_ptr<nn::Sequential> ConvBlock(int64_t input_channels,
                                          int64_t num_channels);

// DenseBlock
//
// The book's DenseBlock: child `net`, a Sequential of `num_convs`
// ConvBlocks, the i-th taking input_channels + i * num_channels channels.
// Forward applies them in turn, each time concatenating the block's output
// to its input along the channels, so the output has input_channels +
// num_convs * num_channels channels at the input's resolution.
class DenseBlock : public nn::Module {
 public:
  DenseBlock(int64_t num_convs, int64_t input_channels, int64_t num_channels);

  autograd::Variable Forward(const autograd::Variable& x) override;
  // "DenseBlock(4, 64, 32)".
  std::string Describe() const override;

  int64_t out_channels() const;

 private:
  int64_t num_convs_;
  int64_t input_channels_;
  int64_t num_channels_;
  std::shared_ptr<nn::Sequential> net_;
};

// TransitionBlock()
//
// The book's transition_block: BatchNorm2d(in), ReLU, Conv2d(in, out, 1),
// AvgPool2d(2, stride 2).
std::shared_ptr<nn::Sequential> TransitionBlock(int64_t input_channels,
                                                int64_t num_channels);

// DenseNet()
//
// The book's net (64 stem channels, growth rate 32, four dense blocks of
// four convolutions), Xavier-initialized.
std::shared_ptr<nn::Sequential> DenseNet();

// The spec "densenet": the book's recipe (its numbers are in densenet.cc).
ModelSpec DenseNetSpec();

}  // namespace dive::models

#endif  // MODELS_DENSENET_DENSENET_H_
