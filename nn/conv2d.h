// File: nn/conv2d.h
// -----------------------------------------------------------------------------
//
// `Conv2d` is the 2-D convolution layer on NCHW images (a cross-correlation,
// like PyTorch's; no dilation or groups). Weight [OC, C, KH, KW] and bias
// [OC] get PyTorch's default initialization, U(-1/sqrt(fan_in),
// 1/sqrt(fan_in)) with fan_in = C * KH * KW.
//
// `Conv2dOptions` holds the configuration: required channel counts and kernel
// size in the constructor, optional stride, padding and bias through chained
// setters. Square kernels, strides and paddings have shorthands.
//
// Example:
//
//   nn::Conv2d c1(1, 6, 5, /*stride=*/1, /*padding=*/2);  // LeNet's first
//   Variable y = c1(x);                   // [N, 1, 28, 28] -> [N, 6, 28, 28]
//
//   nn::Conv2d c2(nn::Conv2dOptions(64, 128, 3).set_stride(2).set_padding(1)
//                     .set_bias(false));
//   nn::Conv2d c3(nn::Conv2dOptions(64, 64, /*kernel_h=*/1, /*kernel_w=*/7)
//                     .set_padding(0, 3));

#ifndef NN_CONV2D_H_
#define NN_CONV2D_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/variable.h"
#include "nn/batch_norm.h"
#include "nn/module.h"
#include "tensor/conv.h"

namespace dive::nn {

// Conv2dOptions
//
// Channels, kernel size, stride, zero padding (applied on both sides of each
// dimension) and whether there is a bias.
struct Conv2dOptions {
  // A square kernel_size x kernel_size kernel.
  Conv2dOptions(int64_t in_channels, int64_t out_channels,
                int64_t kernel_size)
      : Conv2dOptions(in_channels, out_channels, kernel_size, kernel_size) {}
  Conv2dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_h,
                int64_t kernel_w)
      : in_channels(in_channels),
        out_channels(out_channels),
        kernel_h(kernel_h),
        kernel_w(kernel_w) {}

  Conv2dOptions& set_stride(int64_t stride) { return set_stride(stride, stride); }
  Conv2dOptions& set_stride(int64_t h, int64_t w) {
    stride_h = h;
    stride_w = w;
    return *this;
  }
  Conv2dOptions& set_padding(int64_t padding) {
    return set_padding(padding, padding);
  }
  Conv2dOptions& set_padding(int64_t h, int64_t w) {
    pad_h = h;
    pad_w = w;
    return *this;
  }
  Conv2dOptions& set_bias(bool on) {
    bias = on;
    return *this;
  }

  int64_t in_channels;
  int64_t out_channels;
  int64_t kernel_h;
  int64_t kernel_w;
  int64_t stride_h = 1;
  int64_t stride_w = 1;
  int64_t pad_h = 0;
  int64_t pad_w = 0;
  bool bias = true;
};

class Conv2d : public Module {
 public:
  // CHECK-fails on non-positive channels, kernel or stride, or negative
  // padding.
  explicit Conv2d(const Conv2dOptions& options);
  // Square shorthand: Conv2d(1, 6, 5, /*stride=*/1, /*padding=*/2).
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
         int64_t stride = 1, int64_t padding = 0, bool bias = true);

  // x [N, C, H, W] -> [N, OC, OH, OW], OH = (H + 2 * pad_h - KH) / stride_h
  // + 1. CHECK-fails naming the layer and the input shape when x is not
  // rank 4, has the wrong channel count or is smaller than the kernel.
  autograd::Variable Forward(const autograd::Variable& x) override;

  // "Conv2d(1, 6, kernel=5x5, stride=1, padding=2)"; non-square values print
  // as "HxW", and ", bias=false" is appended without a bias.
  std::string Describe() const override;

  const Conv2dOptions& options() const { return options_; }
  const Conv2dParams& params() const { return params_; }
  // [OC, C, KH, KW].
  const autograd::Variable& weight() const { return weight_; }
  // [OC], or undefined without a bias.
  const autograd::Variable& bias() const { return bias_; }

  // ---- Fusion (Module::Fuse) -------------------------------------------------
  //
  // FuseWith(bn, relu) tells this convolution what follows it, for the
  // container that calls it to skip what the convolution absorbs:
  //
  //   * without `bn` (null): ReLU (when `relu`) runs in the convolution's
  //     output pass, in both modes;
  //   * with `bn`: in evaluation mode only, relu(bn(conv(x))) in one pass,
  //     bn folded into the weights and bias at each call from its current
  //     parameters and running statistics,
  //
  //       s = gamma / sqrt(running_var + eps),  w' = w * s,
  //       b' = (b - running_mean) * s + beta;
  //
  //     in training mode the convolution is plain (the BatchNorm needs the
  //     batch's statistics, and applies the ReLU itself).
  //
  // CHECK-fails unless bn is a BatchNorm2d of out_channels features.
  void FuseWith(std::shared_ptr<BatchNormBase> bn, bool relu);
  // Whether the next call folds the BatchNorm (evaluation mode with one).
  bool FoldsBatchNorm() const { return fused_bn_ != nullptr && !is_training(); }
  // The weight and bias the next call uses: weight() and bias(), or, when it
  // folds a BatchNorm, w' and b' above (b' defined even without a bias);
  // while frozen (Module::Freeze), a snapshot of them, the weight a frozen
  // tensor. What int8 quantization (quant/) reads.
  std::pair<autograd::Variable, autograd::Variable> EffectiveWeightAndBias()
      const;
  // The next call as a stage of a chain of convolutions run in one
  // (tensor/conv.h Conv2dChainForward; nn::Sequential runs them in
  // evaluation): the data of EffectiveWeightAndBias(), and the fused ReLU.
  Conv2dStage ChainStage() const;
  // The dtype the next call stores its output in (bf16 where it feeds a
  // convolution or an autocast activation, below).
  DType OutputDType() const;
  // Itself, reading the chain's last value, in evaluation without hooks.
  bool AppendToConvChain(std::vector<ChainedConv>* chain) const override;
  // Whether the next call applies the fused ReLU.
  bool AppliesRelu() const override {
    return fused_relu_ && (fused_bn_ == nullptr || !is_training());
  }

  // Whether this convolution's output goes straight into another
  // convolution, ReLU and folded BatchNorm aside (set by the container's
  // Fuse()). Then, under MatmulPrecision::kBfloat16, the output is stored in
  // bf16: half the bytes written, kept for backward and read by the next
  // convolution, which rounds its input to bf16 anyway, so nothing changes
  // (autograd::Conv2d's output_dtype). Hooks then see a bfloat16 output.
  void set_feeds_convolution(bool feeds) { feeds_conv_ = feeds; }
  bool feeds_convolution() const { return feeds_conv_; }

  // Whether this convolution's output goes into an activation that bf16
  // autocast training stores in bf16 (nn/bf16_activations.h), such as
  // GoogLeNet's Inception output, or into a max pooling, which reads bf16
  // (set by the container's Fuse()). Then the
  // output is stored in bf16 where AutocastStoresBf16: rounded once, here
  // rather than by the consumer, and kept for backward in half the bytes.
  void set_feeds_autocast_bf16(bool feeds) { feeds_autocast_ = feeds; }

  // Whether this convolution's output goes, ReLU and folded BatchNorm
  // aside, into a max pooling whose output goes only into bf16 products (a
  // convolution or Linear, past Flatten and Dropout; set by the container's
  // Fuse()). Then, in evaluation under MatmulPrecision::kBfloat16, the
  // output is stored in bf16: rounding to nearest is monotonic, so the
  // pooling's maxima of the rounded values are the rounded maxima, which
  // the products round to anyway; nothing changes, and the chain's result
  // and the pooling's input take half the bytes.
  void set_feeds_max_pool_into_products(bool feeds) {
    feeds_pool_products_ = feeds;
  }

  // Calls this module (through operator(), so hooks see it) with `residual`
  // (the output's shape) added to its output before the fused ReLU: ResNet's
  // relu(bn2(conv2(y)) + shortcut) in one pass. CHECK-fails unless the call
  // folds a BatchNorm (FoldsBatchNorm()); otherwise the caller adds it.
  autograd::Variable CallWithResidual(const autograd::Variable& x,
                                      const autograd::Variable& residual);

 protected:
  // Frozen: takes or drops the snapshot EffectiveWeightAndBias returns.
  void OnFreeze(bool frozen) override;

 private:
  // EffectiveWeightAndBias() without the snapshot.
  std::pair<autograd::Variable, autograd::Variable> CurrentWeightAndBias()
      const;

  Conv2dOptions options_;
  Conv2dParams params_;
  autograd::Variable weight_;
  autograd::Variable bias_;
  std::shared_ptr<BatchNormBase> fused_bn_;
  bool fused_relu_ = false;
  bool feeds_conv_ = false;
  bool feeds_autocast_ = false;
  bool feeds_pool_products_ = false;
  autograd::Variable residual_;  // set by CallWithResidual for one call
  autograd::Variable frozen_weight_, frozen_bias_;  // while frozen
};

// TryConvChain()
//
// Convolutions that feed each other (ReLU and folded BatchNorm aside), such
// as a NiN block's, an Inception path's or a run of ResNet blocks (gathered
// by Module::AppendToConvChain), called on x as one chain (tensor/conv.h
// Conv2dChainForward: on oneDNN, the activations kept in its blocked layout
// between them; the values of oneDNN's convolutions one by one, bit for bit):
// in evaluation without gradients or tracing, where none of them has hooks
// of its own and oneDNN runs the chain. Otherwise an undefined Variable, and
// the caller calls them one by one.
autograd::Variable TryConvChain(const std::vector<ChainedConv>& chain,
                                const autograd::Variable& x);
// The chain of `convs`, each reading the one before (an Inception path).
std::vector<ChainedConv> ConvsInTurn(const std::vector<const Conv2d*>& convs);
// Whether chains may run at all now: no gradients, no tracing.
bool ChainsAllowed();

}  // namespace dive::nn

#endif  // NN_CONV2D_H_
