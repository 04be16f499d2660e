#include "autograd/grad_check.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "tensor/random.h"

namespace dive::autograd {
namespace {

// sum(R * f(inputs)) in double, without building a graph.
double Project(const GradCheckFn& f, const std::vector<Variable>& inputs,
               const Tensor& r) {
  NoGradGuard no_grad;
  const Tensor y = f(inputs).data().Contiguous();
  const float* py = y.data();
  const float* pr = r.data();
  double acc = 0.0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    acc += static_cast<double>(py[i]) * static_cast<double>(pr[i]);
  }
  return acc;
}

}  // namespace

absl::Status GradCheck(const GradCheckFn& f, const std::vector<Tensor>& inputs,
                       const GradCheckOptions& options) {
  std::vector<Variable> vars;
  for (const Tensor& t : inputs) vars.emplace_back(t.Clone(), true);

  // Analytic gradients: backpropagate R through f.
  Variable y = f(vars);
  Generator gen(options.seed);
  const Tensor r = gen.Uniform(y.shape(), -1.0f, 1.0f);
  if (!y.requires_grad()) {
    return absl::FailedPreconditionError(
        "GradCheck: the output does not depend on any input");
  }
  y.Backward(r);

  for (size_t k = 0; k < vars.size(); ++k) {
    const Tensor& analytic = vars[k].grad();
    float* x = vars[k].data().data();
    for (int64_t i = 0; i < vars[k].numel(); ++i) {
      const float saved = x[i];
      x[i] = saved + static_cast<float>(options.eps);
      const double plus = Project(f, vars, r);
      x[i] = saved - static_cast<float>(options.eps);
      const double minus = Project(f, vars, r);
      x[i] = saved;
      // The step actually taken in float32 may differ slightly from eps.
      const double step =
          static_cast<double>(saved + static_cast<float>(options.eps)) -
          static_cast<double>(saved - static_cast<float>(options.eps));
      const double numeric = (plus - minus) / step;
      const double a = analytic.defined() ? analytic.data()[i] : 0.0;
      if (!(std::fabs(a - numeric) <=
            options.atol + options.rtol * std::fabs(numeric))) {
        return absl::InternalError(
            absl::StrCat("GradCheck: input ", k, " (shape ",
                         vars[k].shape().ToString(), ") element ", i,
                         ": analytic gradient ", a, " vs numeric ", numeric));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace dive::autograd
