// File: cheatsheet/weight_decay.h
// -----------------------------------------------------------------------------
//
// Cheat sheet section 3 (weight decay), computed once and shared by
// `weight_decay_test` and the `weight_decay` binary.
//
// With the squared loss plus the L2 penalty, on a minibatch B,
//
//   l(w, b) + lambda / (2 |B|) ||w||^2,
//   l = 1/|B| sum_i 1/2 (x_i w + b - y_i)^2,
//
// one SGD step is the document's
//
//   w_j <- (1 - eta lambda / |B|) w_j - eta / |B| sum_i x_ij (x_i w + b - y_i)
//
// that is, SGD on l alone with `weight_decay = lambda / |B|` (dive's, like
// PyTorch's, adds weight_decay * w to the gradient). The bias is not decayed.
//
// The book's experiment (Dive into Deep Learning, PyTorch edition, 3.12):
// y = 0.05 + sum_j 0.01 x_j + noise(0.01), 200 inputs, only 20 training and
// 100 test examples, so that the model overfits; minibatches of one example,
// lr 0.003, 100 epochs, w ~ N(0, 1). With lambda = 0 the training loss
// drops towards zero while the test loss stays high; lambda = 3 keeps w
// small and the test loss falls with the training loss.
//
// Example:
//
//   WeightDecayRun r = TrainWeightDecay(3.0f);
//   // r.train_loss[e], r.test_loss[e]: the mean loss after epoch e + 1.

#ifndef CHEATSHEET_WEIGHT_DECAY_H_
#define CHEATSHEET_WEIGHT_DECAY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace dive::cheatsheet {

struct WeightDecayStep {
  // Before the step: w [2, 1], b [1], the batch x [5, 2], y [5, 1].
  Tensor w, b, x, y;
  float eta = 0, lambda = 0;
  // After one step: by the document's update formula (loops), by dive's SGD
  // with weight_decay = lambda / |B| on w, and by autograd through the
  // penalized loss with plain SGD.
  Tensor w_by_formula, b_by_formula;
  Tensor w_by_weight_decay, b_by_weight_decay;
  Tensor w_by_penalty, b_by_penalty;
};

// CheckWeightDecayStep()
//
// The document's two-input example with |B| = 5, eta = 0.1, lambda = 3.
WeightDecayStep CheckWeightDecayStep(uint64_t seed = 3);

struct WeightDecayRun {
  float lambda = 0;
  // The mean squared loss (1/2 (y_hat - y)^2, without the penalty) on the
  // training and the test set after each epoch.
  std::vector<float> train_loss, test_loss;
  // ||w|| after training.
  float w_norm = 0;
};

// TrainWeightDecay()
//
// The book's experiment for one lambda (same data and initial w for every
// lambda, drawn from `seed`).
WeightDecayRun TrainWeightDecay(float lambda, uint64_t seed = 0);

// WeightDecayTable()
//
// gnuplot data for `kWeightDecayScript`: epoch, then train and test loss
// of `a` and of `b`.
std::string WeightDecayTable(const WeightDecayRun& a, const WeightDecayRun& b);

// Draws "weight_decay.dat": lambda = 0 and lambda = 3 side by side, train and
// test loss against the epoch on a log scale, as the book does.
extern const char kWeightDecayScript[];

}  // namespace dive::cheatsheet

#endif  // CHEATSHEET_WEIGHT_DECAY_H_
