// File: optim/sgd.h
// -----------------------------------------------------------------------------
//
// Stochastic gradient descent with optional momentum, dampening, Nesterov
// momentum and L2 weight decay: exactly PyTorch's `torch.optim.SGD`. For each
// parameter w with gradient grad, in a group with learning rate lr and weight
// decay wd:
//
//   g = grad + wd * w
//   if momentum != 0:
//     buf = g                                     (first update of w)
//     buf = momentum * buf + (1 - dampening) * g  (later updates)
//     g = nesterov ? g + momentum * buf : buf
//   w = w - lr * g
//
// With momentum 0 this is plain minibatch SGD on the loss plus
// wd/2 * ||w||^2, i.e. the weight-decay rule w <- (1 - lr*wd) w - lr * grad
// of "Dive into Deep Learning" (section "Weight Decay").
//
// Example:
//
//   SGD sgd(model.Parameters(), {/*lr=*/0.1f, /*momentum=*/0.9f});
//   sgd.ZeroGrad();
//   loss.Backward();
//   sgd.Step();
//
//   SGDOptions options;
//   options.lr = 0.03f;
//   options.weight_decay = 3.0f;
//   SGD decayed({w}, options);
//   decayed.AddParamGroup({{b}, options.lr, /*weight_decay=*/0.0f});

#ifndef OPTIM_SGD_H_
#define OPTIM_SGD_H_

#include <vector>

#include "autograd/variable.h"
#include "optim/optimizer.h"
#include "tensor/tensor.h"

namespace dive::optim {

struct SGDOptions {
  float lr = 0.01f;
  float momentum = 0.0f;
  float dampening = 0.0f;
  // L2 penalty, added to the gradient.
  float weight_decay = 0.0f;
  // Requires momentum > 0 and dampening == 0.
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  // SGD()
  //
  // Optimizes `params` (one group with `options.lr` and
  // `options.weight_decay`). CHECK-fails with "SGD: empty parameter list" on
  // an empty list, and on invalid options.
  SGD(std::vector<autograd::Variable> params, const SGDOptions& options);

  // The options, with the first group's base rate and weight decay as they
  // are now (param_groups() holds every group's).
  SGDOptions options() const;

 protected:
  void Update(const ParamGroup& group, float lr, const Tensor& param,
              const Tensor& grad, ParamState& state) override;
  int NumBuffers() const override { return options_.momentum > 0 ? 1 : 0; }

 private:
  SGDOptions options_;
};

}  // namespace dive::optim

#endif  // OPTIM_SGD_H_
