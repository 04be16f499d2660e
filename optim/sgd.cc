#include "optim/sgd.h"

#include <cstdint>
#include <utility>

namespace dive::optim {
namespace {

constexpr int kMomentumBuffer = 0;
// Below this many elements an update is not worth waking OpenMP's threads.
constexpr int64_t kParallelMin = 1 << 16;

}  // namespace

SGD::SGD(std::vector<autograd::Variable> params, const SGDOptions& options)
    : Optimizer("SGD", std::move(params), options.lr, options.weight_decay),
      options_(options) {
  CHECK_GE(options.momentum, 0.0f) << "SGD: negative momentum";
  CHECK(!options.nesterov ||
        (options.momentum > 0.0f && options.dampening == 0.0f))
      << "SGD: nesterov momentum requires momentum > 0 and dampening = 0, got "
      << "momentum " << options.momentum << " and dampening "
      << options.dampening;
}

SGDOptions SGD::options() const {
  SGDOptions o = options_;
  o.lr = param_groups().front().lr;
  o.weight_decay = param_groups().front().weight_decay;
  return o;
}

void SGD::Update(const ParamGroup& group, float lr,
                 const Tensor& param, const Tensor& grad,
                 ParamState& state) {
  const int64_t n = param.numel();
  float* w = param.data();
  const float* dw = grad.data();
  const float wd = group.weight_decay;
  const float momentum = options_.momentum;
  if (momentum == 0.0f) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) w[i] -= lr * (dw[i] + wd * w[i]);
    return;
  }
  const bool first = state.buffers.empty();
  if (first) state.buffers.push_back(Tensor::Empty(param.shape()));
  float* buf = state.buffers[kMomentumBuffer].data();
  const float damp = 1.0f - options_.dampening;
  const bool nesterov = options_.nesterov;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float g = dw[i] + wd * w[i];
    buf[i] = first ? g : momentum * buf[i] + damp * g;
    w[i] -= lr * (nesterov ? g + momentum * buf[i] : buf[i]);
  }
}

}  // namespace dive::optim
