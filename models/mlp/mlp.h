// File: models/mlp/mlp.h
// -----------------------------------------------------------------------------
//
// Multilayer perceptrons on flattened 28x28 images:
//
//   * `Mlp()` (d2l 4.3): one hidden layer of 256 ReLU units, 784-256-10.
//   * `MlpDropout()` (d2l 4.6): two hidden layers of 256 ReLU units, with
//     Dropout(0.2) after the first and Dropout(0.5) after the second,
//     784-256-256-10.
//
// Weights are drawn from N(0, 0.01) and biases are zero, as the book's
// `init_weights` (nn.init.normal_(m.weight, std=0.01)) and its from-scratch
// versions do. Other input sizes s give a first layer of s * s inputs.
//
// PyTorch twins (models/pytorch_twins.py):
//
//   nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
//                 nn.Linear(256, 10))
//       # keys "1.weight", "1.bias", "3.weight", "3.bias"; 203530 parameters
//   nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
//                 nn.Dropout(0.2), nn.Linear(256, 256), nn.ReLU(),
//                 nn.Dropout(0.5), nn.Linear(256, 10))
//       # keys "1.*", "4.*", "7.*"; 269322 parameters
//
// Example:
//
//   auto net = dive::models::Mlp();           // [N, 1, 28, 28] -> [N, 10]
//   auto reg = dive::models::MlpDropout();    // call reg->Eval() to test

#ifndef MODELS_MLP_MLP_H_
#define MODELS_MLP_MLP_H_

#include <cstdint>
#include <memory>

#include "models/spec.h"
#include "nn/sequential.h"

namespace dive::models {

// Mlp()
//
// 784-256-10 with ReLU for input_size x input_size images (input_size > 0).
std::shared_ptr<nn::Sequential> Mlp(int64_t input_size = 28);

// MlpDropout()
//
// 784-256-256-10 with ReLU, each hidden layer followed by dropout with the
// given probabilities (the book's dropout1 = 0.2, dropout2 = 0.5).
std::shared_ptr<nn::Sequential> MlpDropout(int64_t input_size = 28,
                                           float dropout1 = 0.2f,
                                           float dropout2 = 0.5f);

// The spec "mlp": the book's recipe (its numbers are in mlp.cc).
ModelSpec MlpSpec();

// The spec "mlp_dropout": the book's recipe (its numbers are in mlp.cc).
ModelSpec MlpDropoutSpec();

}  // namespace dive::models

#endif  // MODELS_MLP_MLP_H_
