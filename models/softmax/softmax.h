// File: models/softmax/softmax.h
// -----------------------------------------------------------------------------
//
// Softmax regression (d2l 3.7): a single linear layer on flattened 28x28
// images; the softmax lives in the cross-entropy loss. Weights are drawn from
// N(0, 0.01) and biases are zero, as in the book.
//
// PyTorch twin (models/pytorch_twins.py):
//
//   nn.Sequential(nn.Flatten(), nn.Linear(784, 10))   # keys "1.weight", "1.bias"
//
// Example:
//
//   auto net = dive::models::SoftmaxRegression();   // [N, 1, 28, 28] -> [N, 10]

#ifndef MODELS_SOFTMAX_SOFTMAX_H_
#define MODELS_SOFTMAX_SOFTMAX_H_

#include <memory>

#include "models/spec.h"
#include "nn/sequential.h"

namespace dive::models {

std::shared_ptr<nn::Sequential> SoftmaxRegression(int64_t input_size = 28);

// The spec "softmax": the book's recipe (its numbers are in softmax.cc).
ModelSpec SoftmaxSpec();

}  // namespace dive::models

#endif  // MODELS_SOFTMAX_SOFTMAX_H_
