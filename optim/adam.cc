#include "optim/adam.h"

#include <cmath>
#include <cstdint>
#include <utility>

namespace dive::optim {
namespace {

constexpr int kExpAvg = 0;    // m
constexpr int kExpAvgSq = 1;  // v
// Below this many elements an update is not worth waking OpenMP's threads.
constexpr int64_t kParallelMin = 1 << 16;

AdamOptions FromAdamW(const AdamWOptions& o) {
  return AdamOptions{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay};
}

}  // namespace

Adam::Adam(std::vector<autograd::Variable> params, const AdamOptions& options)
    : Adam("Adam", std::move(params), options,
           /*decoupled_weight_decay=*/false) {}

Adam::Adam(const char* name, std::vector<autograd::Variable> params,
           const AdamOptions& options, bool decoupled_weight_decay)
    : Optimizer(name, std::move(params), options.lr, options.weight_decay),
      options_(options),
      decoupled_weight_decay_(decoupled_weight_decay) {
  CHECK(options.beta1 >= 0.0f && options.beta1 < 1.0f)
      << name << ": beta1 must be in [0, 1), got " << options.beta1;
  CHECK(options.beta2 >= 0.0f && options.beta2 < 1.0f)
      << name << ": beta2 must be in [0, 1), got " << options.beta2;
  CHECK_GE(options.eps, 0.0f) << name << ": negative eps";
}

AdamW::AdamW(std::vector<autograd::Variable> params,
             const AdamWOptions& options)
    : Adam("AdamW", std::move(params), FromAdamW(options),
           /*decoupled_weight_decay=*/true) {}

AdamOptions Adam::options() const {
  AdamOptions o = options_;
  o.lr = param_groups().front().lr;
  o.weight_decay = param_groups().front().weight_decay;
  return o;
}

void Adam::Update(const ParamGroup& group, float lr,
                  const Tensor& param, const Tensor& grad,
                  ParamState& state) {
  if (state.buffers.empty()) {
    state.buffers.push_back(Tensor::Zeros(param.shape()));  // m
    state.buffers.push_back(Tensor::Zeros(param.shape()));  // v
  }
  const int64_t n = param.numel();
  float* w = param.data();
  const float* dw = grad.data();
  float* m = state.buffers[kExpAvg].data();
  float* v = state.buffers[kExpAvgSq].data();

  const float beta1 = options_.beta1;
  const float beta2 = options_.beta2;
  const double t = static_cast<double>(state.step);
  // The bias corrections in double: 1 - 0.999^t loses digits in float.
  const double bias1 = 1.0 - std::pow(static_cast<double>(beta1), t);
  const double bias2 = 1.0 - std::pow(static_cast<double>(beta2), t);
  // w -= step_size * m / (sqrt(v) / sqrt(bias2) + eps), PyTorch's grouping.
  const float step_size = static_cast<float>(lr / bias1);
  const float inv_sqrt_bias2 = static_cast<float>(1.0 / std::sqrt(bias2));
  const float eps = options_.eps;
  // Decoupled: scale w first; coupled: add wd * w to the gradient.
  const float decay =
      decoupled_weight_decay_ ? 1.0f - lr * group.weight_decay : 1.0f;
  const float l2 = decoupled_weight_decay_ ? 0.0f : group.weight_decay;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float wi = w[i] * decay;
    const float g = dw[i] + l2 * wi;
    m[i] = beta1 * m[i] + (1.0f - beta1) * g;
    v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
    w[i] = wi - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bias2 + eps);
  }
}

}  // namespace dive::optim
