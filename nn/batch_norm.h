// File: nn/batch_norm.h
// -----------------------------------------------------------------------------
//
// Batch normalization (Ioffe & Szegedy, 2015) with PyTorch's conventions:
//
//   * `BatchNorm1d(C)` normalizes [N, C] inputs (after a Linear layer),
//     `BatchNorm2d(C)` normalizes [N, C, H, W] inputs (after a Conv2d), each
//     channel over the batch (and the spatial positions).
//   * Parameters `weight` (gamma, initialized to 1) and `bias` (beta, 0).
//   * Buffers `running_mean` (0), `running_var` (1) and
//     `num_batches_tracked` (an int64 scalar counting training batches).
//   * Training mode normalizes with the batch mean and biased variance and
//     updates running = (1 - momentum) * running + momentum * batch_stat,
//     with the unbiased variance; evaluation mode normalizes with the running
//     statistics.
//
// Example:
//
//   nn::BatchNorm2d bn(6);                    // momentum 0.1, eps 1e-5
//   Variable y = bn(x);                       // x: [N, 6, H, W]
//   bn.num_batches_tracked();                 // 1
//   nn::BatchNorm1d bn1(nn::BatchNormOptions(120).set_momentum(0.01f));

#ifndef NN_BATCH_NORM_H_
#define NN_BATCH_NORM_H_

#include <cstdint>
#include <string>

#include "autograd/variable.h"
#include "nn/module.h"
#include "tensor/tensor.h"

namespace dive::nn {

// BatchNormOptions
//
// The channel count and the numerical settings.
struct BatchNormOptions {
  explicit BatchNormOptions(int64_t num_features)
      : num_features(num_features) {}

  BatchNormOptions& set_eps(float value) {
    eps = value;
    return *this;
  }
  BatchNormOptions& set_momentum(float value) {
    momentum = value;
    return *this;
  }

  int64_t num_features;
  float eps = 1e-5f;
  float momentum = 0.1f;
};

// What BatchNorm1d and BatchNorm2d share; they differ only in the input rank.
class BatchNormBase : public Module {
 public:
  // Normalizes x; CHECK-fails naming the layer and the shape unless x has
  // the layer's rank and channel count (and, in training, more than one
  // value per channel).
  autograd::Variable Forward(const autograd::Variable& x) override;
  // "BatchNorm2d(6, eps=1e-05, momentum=0.1)".
  std::string Describe() const override;

  const BatchNormOptions& options() const { return options_; }
  // Gamma and beta, each [C].
  const autograd::Variable& weight() const { return weight_; }
  const autograd::Variable& bias() const { return bias_; }
  // [C] float32 handles sharing storage with the module's buffers.
  const Tensor& running_mean() const { return running_mean_; }
  const Tensor& running_var() const { return running_var_; }
  // The number of training forward passes so far.
  int64_t num_batches_tracked() const;

  // With `on`, ReLU follows the normalization in the same pass, in both
  // modes (Module::Fuse; the container skips the ReLU module): the values
  // and gradients of the two, bit for bit.
  void FuseRelu(bool on) { relu_ = on; }
  bool AppliesRelu() const override { return relu_; }

  // Whether the output goes straight into a convolution, the fused ReLU
  // aside (set by the container's Fuse()). Then, under
  // MatmulPrecision::kBfloat16, it is stored in bf16 (exact: the
  // convolution rounds its input to bf16 anyway), as Conv2d's
  // set_feeds_convolution.
  void set_feeds_convolution(bool feeds) { feeds_conv_ = feeds; }
  bool feeds_convolution() const { return feeds_conv_; }

 protected:
  // `name` is "BatchNorm1d" or "BatchNorm2d"; `input_rank` 2 or 4.
  BatchNormBase(const char* name, int input_rank,
                const BatchNormOptions& options);

 private:
  const char* name_;
  int input_rank_;
  BatchNormOptions options_;
  autograd::Variable weight_;
  autograd::Variable bias_;
  Tensor running_mean_;
  Tensor running_var_;
  Tensor num_batches_tracked_;
  bool relu_ = false;
  bool feeds_conv_ = false;
};

// Batch normalization of [N, C] inputs.
class BatchNorm1d : public BatchNormBase {
 public:
  explicit BatchNorm1d(int64_t num_features)
      : BatchNorm1d(BatchNormOptions(num_features)) {}
  explicit BatchNorm1d(const BatchNormOptions& options)
      : BatchNormBase("BatchNorm1d", 2, options) {}
};

// Batch normalization of [N, C, H, W] inputs.
class BatchNorm2d : public BatchNormBase {
 public:
  explicit BatchNorm2d(int64_t num_features)
      : BatchNorm2d(BatchNormOptions(num_features)) {}
  explicit BatchNorm2d(const BatchNormOptions& options)
      : BatchNormBase("BatchNorm2d", 4, options) {}
};

}  // namespace dive::nn

#endif  // NN_BATCH_NORM_H_
