// File: nn/pool.h
// -----------------------------------------------------------------------------
//
// Pooling layers on NCHW images; none has parameters.
//
//   * `MaxPool2d`: the largest element of each window.
//   * `AvgPool2d`: the mean of each window; padding counts as zeros in the
//     divisor unless count_include_pad is false (as in PyTorch).
//   * `AdaptiveAvgPool2d`: averages into a fixed output size whatever the
//     input size, with PyTorch's windows (start = floor(i * H / OH),
//     end = ceil((i + 1) * H / OH)).
//   * `GlobalAvgPool2d`: the mean of each channel, [N, C, H, W] ->
//     [N, C, 1, 1] (NiN, GoogLeNet, ResNet).
//
// Windows are `kernel`, moving by `stride` (by default the kernel size), over
// an input zero-padded by `padding` (at most half the kernel) on each side;
// output sizes are rounded down (PyTorch's ceil_mode=false).
//
// Example:
//
//   nn::MaxPool2d pool(2);                    // 2x2, stride 2
//   Variable y = pool(x);                     // [N, 6, 28, 28] -> [N, 6, 14, 14]
//   nn::MaxPool2d overlap(3, /*stride=*/2, /*padding=*/1);
//   nn::AvgPool2d avg(3, 1, 1, /*count_include_pad=*/false);
//   nn::AdaptiveAvgPool2d(6, 6);              // AlexNet's pooling to 6x6

#ifndef NN_POOL_H_
#define NN_POOL_H_

#include <cstdint>
#include <string>

#include "autograd/variable.h"
#include "nn/module.h"
#include "tensor/pool.h"

namespace dive::nn {

class MaxPool2d : public Module {
 public:
  // A square window; `stride` 0 means the kernel size.
  explicit MaxPool2d(int64_t kernel_size, int64_t stride = 0,
                     int64_t padding = 0);
  explicit MaxPool2d(const Pool2dParams& params);

  // x [N, C, H, W] -> [N, C, OH, OW]. CHECK-fails naming the layer and the
  // input shape when x is not rank 4 or is smaller than the window.
  autograd::Variable Forward(const autograd::Variable& x) override;
  // "MaxPool2d(kernel=2x2, stride=2, padding=0)".
  std::string Describe() const override;
  const Pool2dParams& params() const { return params_; }
  // Itself, pooling the chain's last value, in evaluation without hooks:
  // the convolutions around it then run as one chain (nn/conv2d.h
  // TryConvChain), the pooling in their layout.
  bool AppendToConvChain(std::vector<ChainedConv>* chain) const override;
  // Whether the output goes straight into a convolution (set by
  // Sequential::Fuse), which rounds it to bf16 anyway: a bf16 input then
  // gives a bf16 output, exactly, at half the bytes.
  void set_feeds_convolution(bool feeds) { feeds_conv_ = feeds; }

 private:
  Pool2dParams params_;
  bool feeds_conv_ = false;
};

class AvgPool2d : public Module {
 public:
  // A square window; `stride` 0 means the kernel size.
  explicit AvgPool2d(int64_t kernel_size, int64_t stride = 0,
                     int64_t padding = 0, bool count_include_pad = true);
  explicit AvgPool2d(const Pool2dParams& params,
                     bool count_include_pad = true);

  // x [N, C, H, W] -> [N, C, OH, OW]. CHECK-fails like `MaxPool2d`.
  autograd::Variable Forward(const autograd::Variable& x) override;
  // "AvgPool2d(kernel=2x2, stride=2, padding=0)", with
  // ", count_include_pad=false" when set.
  std::string Describe() const override;
  const Pool2dParams& params() const { return params_; }
  bool count_include_pad() const { return count_include_pad_; }

 private:
  Pool2dParams params_;
  bool count_include_pad_;
};

class AdaptiveAvgPool2d : public Module {
 public:
  // An output_size x output_size output.
  explicit AdaptiveAvgPool2d(int64_t output_size)
      : AdaptiveAvgPool2d(output_size, output_size) {}
  AdaptiveAvgPool2d(int64_t output_h, int64_t output_w);

  // x [N, C, H, W] -> [N, C, output_h, output_w]. CHECK-fails naming the
  // layer and the shape when x is not rank 4 or H or W is 0.
  autograd::Variable Forward(const autograd::Variable& x) override;
  // "AdaptiveAvgPool2d(6x6)".
  std::string Describe() const override;
  int64_t output_h() const { return output_h_; }
  int64_t output_w() const { return output_w_; }

 private:
  int64_t output_h_;
  int64_t output_w_;
};

class GlobalAvgPool2d : public Module {
 public:
  GlobalAvgPool2d() = default;

  // x [N, C, H, W] -> [N, C, 1, 1]. CHECK-fails naming the shape when x is
  // not rank 4.
  autograd::Variable Forward(const autograd::Variable& x) override;
  // "GlobalAvgPool2d".
  std::string Describe() const override;
};

}  // namespace dive::nn

#endif  // NN_POOL_H_
