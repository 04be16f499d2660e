// File: models/googlenet/googlenet.h
// -----------------------------------------------------------------------------
//
// GoogLeNet (Szegedy et al., 2015; d2l 8.4): a stem of plain convolutions
// (b1, b2), then stacks of Inception blocks (b3, b4, b5) separated by max
// pooling, global average pooling and one Linear layer. An Inception block
// runs four parallel paths on its input, 1x1 / 1x1-3x3 / 1x1-5x5 /
// maxpool-1x1, each followed by a ReLU, and joins them along the channels.
// Adapted to Fashion-MNIST as in the book: 1 input channel, 10 classes,
// 96x96 inputs.
//
// Weights are initialized as the book's `train_ch6` does: Xavier-uniform for
// every Linear and Conv2d weight, PyTorch's default for the biases.
//
// PyTorch twin (`googlenet()` in models/pytorch_twins.py), 5,977,530
// parameters:
//
//   class Inception(nn.Module):
//       def __init__(self, in_channels, c1, c2, c3, c4):
//           self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
//           self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
//           self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
//           self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
//           self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
//           self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
//           self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)
//       def forward(self, x):
//           p1 = F.relu(self.p1_1(x))
//           p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
//           p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
//           p4 = F.relu(self.p4_2(self.p4_1(x)))
//           return torch.cat((p1, p2, p3, p4), dim=1)
//
//   net = nn.Sequential(b1, b2, b3, b4, b5, nn.Linear(1024, 10))
//   # keys "0.0.weight", ..., "2.0.p1_1.weight", ..., "5.weight", "5.bias"
//
// Input sizes: every convolution and pooling is padded enough to give at
// least a 1x1 output, so any size from 1 up works (96 is the book's).
//
// Example:
//
//   auto net = dive::models::GoogLeNet();   // [N, 1, 96, 96] -> [N, 10]
//   dive::models::Inception block(192, 64, {96, 128}, {16, 32}, 32);
//   Variable y = block(x);                  // [N, 192, H, W] -> [N, 256, H, W]

#ifndef MODELS_GOOGLENET_GOOGLENET_H_
#define MODELS_GOOGLENET_GOOGLENET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "autograd/variable.h"
#include "models/spec.h"
#include "nn/conv2d.h"
#include "nn/module.h"
#include "nn/pool.h"
#include "nn/sequential.h"

namespace dive::models {

// The smallest input side GoogLeNet accepts.
inline constexpr int64_t kGoogLeNetMinInputSize = 1;

// Inception
//
// The book's Inception block; children p1_1, p2_1, p2_2, p3_1, p3_2, p4_1
// (the max pooling), p4_2, registered in that order as in PyTorch. `c1`..`c4`
// are the output channels of each path (pairs for the two-layer paths); the
// output has c1 + c2.second + c3.second + c4 channels at the input's size.
class Inception : public nn::Module {
 public:
  Inception(int64_t in_channels, int64_t c1, std::pair<int64_t, int64_t> c2,
            std::pair<int64_t, int64_t> c3, int64_t c4);

  autograd::Variable Forward(const autograd::Variable& x) override;
  // Fuses each path's ReLUs into its convolutions (nn::Module::Fuse).
  void Fuse() override;
  // "Inception(192, 64, (96, 128), (16, 32), 32)".
  std::string Describe() const override;

  int64_t out_channels() const;

 private:
  int64_t in_channels_;
  int64_t c1_;
  std::pair<int64_t, int64_t> c2_;
  std::pair<int64_t, int64_t> c3_;
  int64_t c4_;
  std::shared_ptr<nn::Conv2d> p1_1_;
  std::shared_ptr<nn::Conv2d> p2_1_;
  std::shared_ptr<nn::Conv2d> p2_2_;
  std::shared_ptr<nn::Conv2d> p3_1_;
  std::shared_ptr<nn::Conv2d> p3_2_;
  std::shared_ptr<nn::MaxPool2d> p4_1_;
  std::shared_ptr<nn::Conv2d> p4_2_;
};

// GoogLeNet()
//
// The book's net, Xavier-initialized.
std::shared_ptr<nn::Sequential> GoogLeNet();

// The spec "googlenet": the book's recipe (its numbers are in googlenet.cc).
ModelSpec GoogLeNetSpec();

}  // namespace dive::models

#endif  // MODELS_GOOGLENET_GOOGLENET_H_
