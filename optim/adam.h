// File: optim/adam.h
// -----------------------------------------------------------------------------
//
// Adam and AdamW, with bias correction, exactly as PyTorch's
// `torch.optim.Adam` and `torch.optim.AdamW` (amsgrad off). For parameter w
// with gradient grad on its t-th update (t = 1, 2, ...):
//
//   AdamW only:  w = w - lr * wd * w                 (decoupled decay)
//   Adam only:   g = grad + wd * w                   (L2 penalty)
//   AdamW:       g = grad
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g^2
//   m_hat = m / (1 - beta1^t)
//   v_hat = v / (1 - beta2^t)
//   w = w - lr * m_hat / (sqrt(v_hat) + eps)
//
// m and v start at zero. The step count t is per parameter, so a parameter
// that got no gradient on some step is not advanced on it.
//
// Example:
//
//   Adam adam(model.Parameters(), AdamOptions{});           // lr 1e-3
//   AdamW adamw(model.Parameters(), {/*lr=*/3e-4f});         // wd 1e-2
//   adam.ZeroGrad();
//   loss.Backward();
//   adam.Step();

#ifndef OPTIM_ADAM_H_
#define OPTIM_ADAM_H_

#include <vector>

#include "autograd/variable.h"
#include "optim/optimizer.h"
#include "tensor/tensor.h"

namespace dive::optim {

struct AdamOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  // L2 penalty, added to the gradient.
  float weight_decay = 0.0f;
};

// The same fields as AdamOptions; only the default weight decay differs.
struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  // Decoupled: w <- w - lr * weight_decay * w before the Adam step.
  float weight_decay = 1e-2f;
};

class Adam : public Optimizer {
 public:
  // Adam()
  //
  // Optimizes `params` (one group with `options.lr` and
  // `options.weight_decay`). CHECK-fails with "Adam: empty parameter list" on
  // an empty list, and on betas outside [0, 1) or a negative eps.
  Adam(std::vector<autograd::Variable> params, const AdamOptions& options);

  // The options, with the first group's base rate and weight decay as they
  // are now (param_groups() holds every group's).
  AdamOptions options() const;

 protected:
  Adam(const char* name, std::vector<autograd::Variable> params,
       const AdamOptions& options, bool decoupled_weight_decay);

  void Update(const ParamGroup& group, float lr, const Tensor& param,
              const Tensor& grad, ParamState& state) override;
  int NumBuffers() const override { return 2; }

 private:
  AdamOptions options_;
  bool decoupled_weight_decay_;
};

class AdamW : public Adam {
 public:
  // AdamW()
  //
  // Adam with decoupled weight decay (Loshchilov & Hutter). CHECK-fails with
  // "AdamW: empty parameter list" on an empty list.
  AdamW(std::vector<autograd::Variable> params, const AdamWOptions& options);
};

}  // namespace dive::optim

#endif  // OPTIM_ADAM_H_
