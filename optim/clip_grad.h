// File: optim/clip_grad.h
// -----------------------------------------------------------------------------
//
// Gradient clipping by global norm, as PyTorch's
// `torch.nn.utils.clip_grad_norm_`: the gradients of all parameters are
// treated as one vector; if its L2 norm exceeds `max_norm`, every gradient is
// scaled by max_norm / (norm + 1e-6), so the clipped norm is just under
// `max_norm`. Call it between `Backward()` and the optimizer's `Step()`.
//
// Example:
//
//   loss.Backward();
//   float norm = ClipGradNorm(model.Parameters(), /*max_norm=*/1.0f);
//   sgd.Step();

#ifndef OPTIM_CLIP_GRAD_H_
#define OPTIM_CLIP_GRAD_H_

#include <vector>

#include "autograd/variable.h"

namespace dive::optim {

// ClipGradNorm()
//
// Returns the global L2 norm of the gradients of `params` before clipping
// (parameters without a gradient are skipped; 0 when none has one). When the
// norm is above `max_norm` (>= 0, else CHECK-fails), replaces each gradient
// by a scaled copy through `Variable::set_grad`: gradient tensors are never
// written in place, since a gradient set by hand may be shared. `params` is
// taken by const reference because copies of a `Variable` share its
// gradient, so `ClipGradNorm(model.Parameters(), ...)` works.
float ClipGradNorm(const std::vector<autograd::Variable>& params,
                   float max_norm);

}  // namespace dive::optim

#endif  // OPTIM_CLIP_GRAD_H_
