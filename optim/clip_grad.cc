#include "optim/clip_grad.h"

#include <cmath>
#include <cstdint>

#include "absl/container/flat_hash_set.h"
#include "glog/logging.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace dive::optim {

float ClipGradNorm(const std::vector<autograd::Variable>& params,
                   float max_norm) {
  CHECK_GE(max_norm, 0.0f) << "ClipGradNorm: negative max_norm " << max_norm;
  // A parameter listed twice counts, and is scaled, once.
  std::vector<autograd::Variable> with_grad;
  absl::flat_hash_set<const autograd::GradNode*> seen;
  for (const autograd::Variable& p : params) {
    if (p.grad().defined() && seen.insert(p.node().get()).second) {
      with_grad.push_back(p);
    }
  }
  double sum_sq = 0.0;
  for (const autograd::Variable& p : with_grad) {
    const Tensor& grad = p.grad();
    const Tensor g = grad.Contiguous();
    const float* d = g.data();
    const int64_t n = g.numel();
    for (int64_t i = 0; i < n; ++i) sum_sq += static_cast<double>(d[i]) * d[i];
  }
  const double norm = std::sqrt(sum_sq);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    for (autograd::Variable& p :
         with_grad) {  // copies share the node with params.
      p.set_grad(ops::MulScalar(p.grad(), static_cast<float>(coef)));
    }
  }
  return static_cast<float>(norm);
}

}  // namespace dive::optim
