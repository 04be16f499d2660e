// File: nn/testing.h
// -----------------------------------------------------------------------------
//
// Test helpers for modules (testonly).
//
// `GradCheckModule(module, x)` runs `GradCheck` (see `autograd/grad_check.h`)
// on a module as a function of its input and of every one of its parameters,
// so a layer's test checks the gradients the layer actually produces: the
// forward goes through `module(x)` with the module's own parameter
// `Variable`s, and the analytic gradients are what `Backward` leaves in their
// `grad()`. Afterwards the parameters hold their old values and no gradient.
//
// Example:
//
//   nn::Conv2d conv(2, 3, 3, /*stride=*/1, /*padding=*/1);
//   absl::Status s = nn::GradCheckModule(conv, dive::Normal({2, 2, 5, 5}, 0, 1));
//   EXPECT_TRUE(s.ok()) << s;
//
// The module's forward must be deterministic (for Dropout, reseed the
// generator inside the checked function and call `GradCheck` directly).

#ifndef NN_TESTING_H_
#define NN_TESTING_H_

#include <vector>

#include "absl/status/status.h"
#include "autograd/grad_check.h"
#include "nn/module.h"
#include "tensor/tensor.h"

namespace dive::nn {

// GradCheckModule()
//
// Checks the gradients of `module(x)` with respect to x (input 0 in error
// messages) and each parameter (input k + 1 for `module.Parameters()[k]`).
absl::Status GradCheckModule(Module& module, const Tensor& x,
                             const autograd::GradCheckOptions& options = {});

// AssignValues()
//
// Overwrites the elements of `t` in row-major order with `values`, in place
// (so a parameter is set through `AssignValues(layer.weight().data(), ...)`).
// CHECK-fails when the sizes differ.
void AssignValues(const Tensor& t, const std::vector<float>& values);

}  // namespace dive::nn

#endif  // NN_TESTING_H_
