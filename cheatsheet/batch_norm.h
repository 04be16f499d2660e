// File: cheatsheet/batch_norm.h
// -----------------------------------------------------------------------------
//
// Cheat sheet section 6.11 (batch normalization), computed once and shared
// by `batch_norm_test` and the `batch_norm` binary.
//
// Training (6.11.1; per feature, over the m examples of the minibatch):
//
//   mu      = 1/m sum_i x_i
//   sigma^2 = 1/m sum_i (x_i - mu)^2        <- biased: see below
//   x_hat   = (x_i - mu) / sqrt(sigma^2 + eps)
//   y_i     = gamma * x_hat + beta
//
// 6.11.2: after a convolution the same per channel, over the m x p x q
// values of the channel. 6.11.3: at prediction time the moving averages
// replace the batch statistics:
//
//   running_mean <- (1 - momentum) running_mean + momentum mu
//   running_var  <- (1 - momentum) running_var  + momentum sigma^2 m/(m - 1)
//   y = gamma (x - running_mean) / sqrt(running_var + eps) + beta
//
// Which variance where: the document writes sigma^2 with 1/(m - 1). PyTorch
// (torch.nn.BatchNorm1d/2d, F.batch_norm) normalizes with the *biased*
// variance, 1/m, and stores the *unbiased* one, 1/(m - 1), in running_var;
// dive's BatchNorm1d/2d do exactly the same (tensor/batch_norm.h). The
// formulas here use 1/m for normalizing and m/(m - 1) for the moving
// average, and `y_with_unbiased_var` shows what the document's 1/(m - 1)
// would give instead.
//
// Example:
//
//   BatchNormCase c = FullyConnectedCase();
//   // c.y_by_hand equals c.y_by_dive (BatchNorm1d in training mode).

#ifndef CHEATSHEET_BATCH_NORM_H_
#define CHEATSHEET_BATCH_NORM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace dive::cheatsheet {

struct ChannelStats {
  std::vector<float> mean, var_biased, var_unbiased;
  int64_t m = 0;  // values per channel
};

// Per-channel statistics of x [N, C] or [N, C, H, W], in double.
ChannelStats ComputeChannelStats(const Tensor& x);

// gamma * (x - mean) / sqrt(var + eps) + beta per channel, by loops.
Tensor NormalizeByHand(const Tensor& x, const std::vector<float>& mean,
                       const std::vector<float>& var,
                       const std::vector<float>& gamma,
                       const std::vector<float>& beta, float eps);

struct BatchNormCase {
  std::string what;
  float eps = 0, momentum = 0;
  std::vector<float> gamma, beta;
  // First training batch: statistics, the output by hand (biased variance)
  // and by dive, and by hand with the document's 1/(m - 1) variance.
  Tensor x;
  ChannelStats stats;
  Tensor y_by_hand, y_by_dive, y_with_unbiased_var;
  // The moving averages after this batch and a second one (x2), by the
  // formulas (starting from mean 0, variance 1) and dive's buffers.
  Tensor x2;
  std::vector<float> running_mean_by_formula, running_var_by_formula;
  std::vector<float> running_mean_by_dive, running_var_by_dive;
  int64_t batches_tracked = 0;
  // Prediction (evaluation mode) on x_test, by hand with the moving
  // averages and by dive.
  Tensor x_test, predict_by_hand, predict_by_dive;
  // gamma = sqrt(sigma^2 + eps), beta = mu: batch norm gives back x.
  Tensor y_identity;
};

// FullyConnectedCase()
//
// BatchNorm1d(3) on x [4, 3] (m = 4), gamma [2, -1, 0.5], beta
// [0.1, 0.2, -0.3], eps 1e-5, momentum 0.1; data from `seed`.
BatchNormCase FullyConnectedCase(uint64_t seed = 9);

// ConvolutionCase()
//
// BatchNorm2d(3) on x [2, 3, 4, 5] (m = 2 x 4 x 5 = 40 per channel), the
// same gamma, beta, eps and momentum.
BatchNormCase ConvolutionCase(uint64_t seed = 10);

}  // namespace dive::cheatsheet

#endif  // CHEATSHEET_BATCH_NORM_H_
