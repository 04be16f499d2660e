// File: cheatsheet/softmax_regression.h
// -----------------------------------------------------------------------------
//
// Cheat sheet section 1 (softmax regression, 1.2-1.4), computed once and
// shared by `softmax_regression_test` (which asserts it) and the
// `softmax_regression` binary (which prints it).
//
//   1.2  one example, a row vector x (1 x d):  y_hat = softmax(x W + b)
//   1.3  a batch X (n x d):                    Y_hat = softmax(X W + b)
//   1.4  cross-entropy of one example:         l = -log y_hat[y]
//        one minibatch SGD step:
//          W <- W + (alpha / |B|) sum_n x_n^T (y_n - y_hat_n)
//          b <- b + (alpha / |B|) sum_n (y_n - y_hat_n)
//        (y_n one-hot), which is plain SGD on the mean cross-entropy.
//
// Example:
//
//   SoftmaxRegressionSheet s = RunSoftmaxRegression();
//   // s.y_hat_single equals s.y_hat_batch; s.w_by_formula equals s.w_by_sgd.

#ifndef CHEATSHEET_SOFTMAX_REGRESSION_H_
#define CHEATSHEET_SOFTMAX_REGRESSION_H_

#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace dive::cheatsheet {

// SoftmaxOfRow()
//
// exp(o_c) / sum_c' exp(o_c'), straight from the definition (in double, no
// max subtraction: fine for the small logits of the examples).
std::vector<float> SoftmaxOfRow(const std::vector<float>& logits);

struct SoftmaxRegressionSheet {
  // The data: X [n, d], labels int64 [n], W [d, C], b [C], learning rate.
  Tensor x, labels, w, b;
  float lr = 0;
  // 1.2, example by example with SoftmaxOfRow, and 1.3, the batch with
  // dive's MatMul, broadcast Add and Softmax: both [n, C].
  Tensor y_hat_single, y_hat_batch;
  // 1.4: -log y_hat[y] for each example, their mean, and dive's
  // SoftmaxCrossEntropy (mean over the batch) of the same logits.
  std::vector<float> ce_by_formula;
  float ce_mean_by_formula = 0;
  float ce_by_dive = 0;
  // 1.4: W and b after one step by the update formula, and after one step
  // of dive's SGD on SoftmaxCrossEntropy.
  Tensor w_by_formula, b_by_formula, w_by_sgd, b_by_sgd;
};

// RunSoftmaxRegression()
//
// n = 4 examples, d = 3 features, C = 3 classes drawn from `seed`, lr 0.5.
SoftmaxRegressionSheet RunSoftmaxRegression(uint64_t seed = 1);

}  // namespace dive::cheatsheet

#endif  // CHEATSHEET_SOFTMAX_REGRESSION_H_
