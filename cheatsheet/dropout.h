// File: cheatsheet/dropout.h
// -----------------------------------------------------------------------------
//
// Cheat sheet section 4 (dropout), computed once and shared by
// `dropout_test` and the `dropout` binary.
//
//   h'_i = xi_i / (1 - p) * h_i,   P(xi_i = 0) = p,  P(xi_i = 1) = 1 - p,
//   so E[h'_i] = h_i: dropout does not change the expected activation.
//
// `MeasureDropoutExpectation` averages dive's `Dropout` over many masks;
// `CompareDropout` trains the book's MLP (784-256-256-10, dropout 0.2 and
// 0.5 after the hidden layers, lr 0.5, batch 256) for one epoch with and
// without dropout; at test time (evaluation mode) nothing is dropped.
//
// Example:
//
//   DropoutExpectation e = MeasureDropoutExpectation(0.5f);
//   // e.mean_h_prime is close to e.h.

#ifndef CHEATSHEET_DROPOUT_H_
#define CHEATSHEET_DROPOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "tensor/tensor.h"

namespace dive::cheatsheet {

struct DropoutExpectation {
  float p = 0;
  int64_t masks = 0;
  std::vector<float> h;             // the activations
  std::vector<float> mean_h_prime;  // mean of h' over the masks
  float zero_fraction = 0;          // of all h' values
  // h' values that are neither 0 nor h / (1 - p) (within 1e-6 relative).
  int64_t other_values = 0;
};

// MeasureDropoutExpectation()
//
// h = [-2, -1, -0.5, 0, 0.5, 1, 2, 4], `masks` independent masks of dive's
// Dropout with probability p (CHECK: 0 <= p < 1), drawn from `seed`.
DropoutExpectation MeasureDropoutExpectation(float p, int64_t masks = 20000,
                                             uint64_t seed = 4);

// The book's first example: X = arange(16) as [2, 8] through Dropout(p).
Tensor DropoutOfArange(float p, uint64_t seed = 5);

// The book's recipe (lr 0.5, batch 256, the whole training set), one epoch.
struct DropoutTrainOptions {
  float lr = 0.5f;
  int64_t batch_size = 256;
  int64_t train_limit = 0;  // the first N training examples; <= 0: all
  int64_t test_limit = 0;   // the first N test examples; <= 0: all
  uint64_t seed = 0;        // initial weights, minibatch order, masks
};

struct EpochResult {
  float dropout1 = 0, dropout2 = 0;
  // The loss of every minibatch, in order.
  std::vector<float> batch_losses;
  // Mean loss and accuracy over the epoch's minibatches, as the book's
  // animator reports them (training mode, so with dropout when it is on).
  float train_loss = 0, train_acc = 0;
  // Accuracy on the test set in evaluation mode (no dropout).
  float test_acc = 0;
  // Accuracy on the same test set evaluated a second time: evaluation mode
  // is deterministic, so it equals test_acc.
  float test_acc_again = 0;
};

struct DropoutComparison {
  int64_t train_examples = 0, test_examples = 0;
  EpochResult without, with;
};

// CompareDropout()
//
// One epoch of the book's MLP with dropout (0, 0) and (0.2, 0.5), the same
// initial weights and minibatch order.
DropoutComparison CompareDropout(const data::InMemoryDataset& train,
                                 const data::InMemoryDataset& test,
                                 const DropoutTrainOptions& options = {});

}  // namespace dive::cheatsheet

#endif  // CHEATSHEET_DROPOUT_H_
