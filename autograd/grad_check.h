// File: autograd/grad_check.h
// -----------------------------------------------------------------------------
//
// Finite-difference gradient checking, the test every differentiable op and
// layer of the framework must pass.
//
// `GradCheck(f, inputs)` compares, for every element of every input, the
// analytic gradient of
//
//   L(inputs) = sum(R * f(inputs))
//
// (R a fixed random tensor, so every output element contributes with its own
// weight) against the central difference (L(x + eps) - L(x - eps)) / 2eps.
// L is accumulated in double precision. It returns OK or an error that names
// the input, the element index and both values.
//
// Example:
//
//   absl::Status s = GradCheck(
//       [](const std::vector<Variable>& in) { return Tanh(in[0] * in[1]); },
//       {dive::Normal({3, 4}, 0, 1), dive::Normal({4}, 0, 1)});
//   EXPECT_TRUE(s.ok()) << s;

#ifndef AUTOGRAD_GRAD_CHECK_H_
#define AUTOGRAD_GRAD_CHECK_H_

#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "autograd/variable.h"

namespace dive::autograd {

struct GradCheckOptions {
  double eps = 1e-2;   // step of the central difference
  double atol = 1e-3;  // |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-2;
  uint64_t seed = 1;   // for the output weights R
};

using GradCheckFn = std::function<Variable(const std::vector<Variable>&)>;

// Checks the gradients of `f` with respect to every input. `f` must be
// deterministic (fix any dropout mask outside it).
absl::Status GradCheck(const GradCheckFn& f, const std::vector<Tensor>& inputs,
                       const GradCheckOptions& options = {});

}  // namespace dive::autograd

#endif  // AUTOGRAD_GRAD_CHECK_H_
