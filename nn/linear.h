// File: nn/linear.h
// -----------------------------------------------------------------------------
//
// `Linear` is the fully connected layer y = x W^T + b, with PyTorch's layout
// (weight [out_features, in_features], bias [out_features]) and default
// initialization: weight and bias from U(-1/sqrt(in), 1/sqrt(in)) (Kaiming
// uniform with a = sqrt(5)), drawn from `dive::DefaultGenerator()`.
//
// Example:
//
//   nn::Linear fc(784, 256);                  // parameters "weight", "bias"
//   Variable y = fc(x);                       // x: [N, 784] -> y: [N, 256]
//   fc.NumParameters();                       // 200960
//
//   nn::Linear no_bias(784, 256, /*bias=*/false);

#ifndef NN_LINEAR_H_
#define NN_LINEAR_H_

#include <cstdint>
#include <string>

#include "autograd/variable.h"
#include "nn/module.h"

namespace dive::nn {

class Linear : public Module {
 public:
  // A layer from `in_features` to `out_features` (both positive), with a
  // bias unless `bias` is false.
  Linear(int64_t in_features, int64_t out_features, bool bias = true);

  // x [N, in_features] -> [N, out_features]. CHECK-fails naming the layer and
  // both shapes on any other input shape.
  autograd::Variable Forward(const autograd::Variable& x) override;

  // "Linear(784, 256)", or "Linear(784, 256, bias=false)".
  std::string Describe() const override;

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  // [out_features, in_features].
  const autograd::Variable& weight() const { return weight_; }
  // [out_features], or undefined without a bias.
  const autograd::Variable& bias() const { return bias_; }

 protected:
  // Frozen (Module::Freeze): calls use a frozen snapshot of the weight and a
  // copy of the bias.
  void OnFreeze(bool frozen) override;

 private:
  int64_t in_features_;
  int64_t out_features_;
  autograd::Variable weight_;
  autograd::Variable bias_;
  autograd::Variable frozen_weight_, frozen_bias_;  // while frozen
};

}  // namespace dive::nn

#endif  // NN_LINEAR_H_
