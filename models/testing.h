// File: models/testing.h
// -----------------------------------------------------------------------------
//
// Test helpers shared by the model tests (testonly): the state_dict of a
// PyTorch twin (models/pytorch_twins.py) to compare a model with, the init
// checks, inputs without near ties for finite differences, and the loss over
// a few SGD steps on a fixed batch.
//
// Example:
//
//   ExpectStateDictMatchesTwin(*net, ParseKeyShapes(kTwinStateDict));
//
//   ManualSeed(0);
//   const auto [x, y] = RandomBatch(8, 28);
//   const auto [before, after] =
//       EvalLossBeforeAndAfterSgdSteps(*net, x, y, /*lr=*/0.09f, /*steps=*/10);
//   EXPECT_LT(after, before);

#ifndef MODELS_TESTING_H_
#define MODELS_TESTING_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/spec.h"
#include "nn/module.h"
#include "tensor/shape.h"
#include "tensor/tensor.h"

namespace dive::models {

// ---- Names and keys ---------------------------------------------------------

// ParameterNames()
//
// The names of `net`'s parameters in registration order, as PyTorch's
// `[name for name, _ in net.named_parameters()]`.
std::vector<std::string> ParameterNames(const nn::Module& net);

// Sorted()
//
// `v` in ascending order, for comparing a PyTorch key list with a StateDict.
template <typename T>
std::vector<T> Sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// (key, shape) pairs, the shape as `Shape::ToString()` writes it ("[64, 1]").
using KeyShapes = std::vector<std::pair<std::string, std::string>>;

// ParseKeyShapes()
//
// The entries of a "key shape" table, one per line and in order, as
// `python3 -m models.pytorch_twins params <model>` prints a twin's
// state_dict; empty lines are skipped.
KeyShapes ParseKeyShapes(const char* text);

// StateDictShapes()
//
// The (key, shape) entries of `net.StateDict()`, sorted by key.
KeyShapes StateDictShapes(const nn::Module& net);

// ParameterKeys()
//
// The keys of `state_dict` that name parameters, in order: all but BatchNorm's
// buffers (".running_mean", ".running_var", ".num_batches_tracked").
std::vector<std::string> ParameterKeys(const KeyShapes& state_dict);

// ExpectStateDictMatchesTwin()
//
// Expects `net` to have the keys and shapes of the PyTorch twin's state_dict
// `twin` (a `ParseKeyShapes` table in PyTorch's order), and its parameters in
// the twin's order (`named_parameters()`, the table without buffers).
void ExpectStateDictMatchesTwin(const nn::Module& net, const KeyShapes& twin);

// ---- Values -----------------------------------------------------------------

// MaxAbs()
//
// The largest absolute value of a float32 tensor (0 when empty).
float MaxAbs(const Tensor& t);

// ExpectUniformBound()
//
// Expects the values of `t` to look like draws from U(-bound, bound): none
// above `bound` in absolute value and the largest above 0.95 * bound (which
// holds for a few hundred draws or more).
void ExpectUniformBound(const Tensor& t, float bound);

// DistinctValues()
//
// A float32 tensor of `shape` holding the distinct multiples of `step`
// (-n/2, ..., n/2 - 1 times `step`) in a random order drawn from
// `DefaultGenerator()`: an input without the near ties that a finite
// difference could flip in max pooling.
Tensor DistinctValues(const Shape& shape, float step);

// ---- Building and training --------------------------------------------------

// RandomBatch()
//
// {images, labels}: n images [n, 1, size, size] of N(0, 1) noise drawn from
// `DefaultGenerator()`, labelled 0, 1, ..., n - 1 (int64 [n], n <= 10).
std::pair<Tensor, Tensor> RandomBatch(int64_t n, int64_t size);

// MakeOrDie()
//
// `spec.make(input_size)`; CHECK-fails with the status when it fails.
std::shared_ptr<nn::Module> MakeOrDie(const ModelSpec& spec,
                                      int64_t input_size);

// SgdStepLosses()
//
// Runs `steps` SGD steps (learning rate `lr`, no momentum) on the fixed batch
// of images `x` and int64 labels `y` with the cross-entropy loss, in `net`'s
// current mode. Element i of the result is the loss at step i, before that
// step's update (so element 0 is the initial loss).
std::vector<float> SgdStepLosses(nn::Module& net, const Tensor& x,
                                 const Tensor& y, float lr, int steps);

// EvalLossBeforeAndAfterSgdSteps()
//
// The cross-entropy loss of (x, y) in eval mode (no dropout) before and after
// `steps` SGD steps in training mode; `net` is left in training mode.
std::pair<float, float> EvalLossBeforeAndAfterSgdSteps(nn::Module& net,
                                                       const Tensor& x,
                                                       const Tensor& y,
                                                       float lr, int steps);

// ---- Specs ------------------------------------------------------------------

}  // namespace dive::models

#endif  // MODELS_TESTING_H_
