// File: models/init.h
// -----------------------------------------------------------------------------
//
// The book's weight initializations (Dive into Deep Learning, PyTorch
// edition), applied to a whole module tree after construction like PyTorch's
// `net.apply(init_weights)`. Each visits `module` and its descendants in
// `NamedModules()` order (depth-first in registration order, each module
// once), drawing from `dive::DefaultGenerator()`, so `dive::ManualSeed`
// makes the result reproducible.
//
//   * `XavierInitWeights`: train_ch6's `init_weights` (d2l 6.6 onwards):
//     `nn.init.xavier_uniform_(m.weight)` for every Linear and Conv2d. Biases,
//     BatchNorm and everything else keep their default initialization.
//   * `NormalInitWeights`: the MLP chapters' `init_weights` (d2l 3.7, 4.3):
//     `nn.init.normal_(m.weight, std=std)` and a zero bias for every Linear.
//
// Example:
//
//   auto net = std::make_shared<nn::Sequential>(...);
//   dive::models::XavierInitWeights(*net);
//
//   auto mlp = std::make_shared<nn::Sequential>(...);
//   dive::models::NormalInitWeights(*mlp, /*std=*/0.01f);

#ifndef MODELS_INIT_H_
#define MODELS_INIT_H_

#include "nn/module.h"

namespace dive::models {

// XavierInitWeights()
//
// Xavier-uniform weights, U(-b, b) with b = sqrt(6 / (fan_in + fan_out)), for
// every nn::Linear and nn::Conv2d in the tree rooted at `module`; biases are
// left untouched.
void XavierInitWeights(nn::Module& module);

// NormalInitWeights()
//
// N(0, std^2) weights and zero biases for every nn::Linear in the tree rooted
// at `module`; other modules (Conv2d included) are left untouched.
void NormalInitWeights(nn::Module& module, float std);

}  // namespace dive::models

#endif  // MODELS_INIT_H_
