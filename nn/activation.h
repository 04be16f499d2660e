// File: nn/activation.h
// -----------------------------------------------------------------------------
//
// Elementwise activations (and softmax) as modules, for use in `Sequential`.
// None has parameters; each forwards to the autograd function of the same
// name in `autograd/functions.h`.
//
// Example:
//
//   nn::Sequential mlp({std::make_shared<nn::Linear>(784, 256),
//                       std::make_shared<nn::ReLU>(),
//                       std::make_shared<nn::Linear>(256, 10)});
//   nn::Softmax softmax(/*axis=*/1);
//   Variable probs = softmax(mlp(x));         // rows sum to 1

#ifndef NN_ACTIVATION_H_
#define NN_ACTIVATION_H_

#include <string>

#include "autograd/variable.h"
#include "nn/module.h"

namespace dive::nn {

// max(x, 0), with gradient 0 at x = 0.
class ReLU : public Module {
 public:
  autograd::Variable Forward(const autograd::Variable& x) override;
  std::string Describe() const override { return "ReLU"; }
};

// 1 / (1 + exp(-x)).
class Sigmoid : public Module {
 public:
  autograd::Variable Forward(const autograd::Variable& x) override;
  std::string Describe() const override { return "Sigmoid"; }
};

// tanh(x).
class Tanh : public Module {
 public:
  autograd::Variable Forward(const autograd::Variable& x) override;
  std::string Describe() const override { return "Tanh"; }
};

// exp(x) / sum(exp(x)) along `axis` (numerically stable).
class Softmax : public Module {
 public:
  // Negative axes count from the back; the default is the last axis.
  explicit Softmax(int axis = -1) : axis_(axis) {}
  autograd::Variable Forward(const autograd::Variable& x) override;
  // "Softmax(axis=1)".
  std::string Describe() const override;

 private:
  int axis_;
};

}  // namespace dive::nn

#endif  // NN_ACTIVATION_H_
