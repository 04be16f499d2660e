#include "distributed/sync_batch_norm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "glog/logging.h"
#include "nn/batch_norm.h"

namespace dive::distributed {
namespace {

// x as [n, c, hw].
struct Layout {
  int64_t n = 0, c = 0, hw = 1;
  explicit Layout(const Shape& shape) {
    n = shape[0];
    c = shape[1];
    for (int d = 2; d < shape.rank(); ++d) hw *= shape[d];
  }
};

// Sums `data[0, n)` over the ranks; on failure keeps the local values and
// records the first error.
void SumOverRanks(ProcessGroup& group, double* data, size_t n,
                  absl::Status* error) {
  if (group.size() == 1) return;
  absl::Status s = group.AllReduceSum(data, n);
  if (!s.ok() && error != nullptr && error->ok()) *error = std::move(s);
}

}  // namespace

autograd::Variable SyncBatchNormTrain(ProcessGroup& group,
                                      const autograd::Variable& x,
                                      const autograd::Variable& weight,
                                      const autograd::Variable& bias,
                                      Tensor running_mean, Tensor running_var,
                                      float momentum, float eps, bool relu,
                                      std::shared_ptr<absl::Status> error) {
  CHECK(x.rank() == 2 || x.rank() == 4)
      << "SyncBatchNorm expects [N, C] or [N, C, H, W], got " << x.shape();
  CHECK(x.data().dtype() == DType::kFloat32)
      << "SyncBatchNorm: input dtype " << DTypeName(x.data().dtype());
  const Layout l(x.shape());
  CHECK(weight.shape() == Shape({l.c}) && bias.shape() == Shape({l.c}))
      << "SyncBatchNorm: input has " << l.c << " channels but weight is "
      << weight.shape() << " and bias " << bias.shape();
  const Tensor xd = x.data().Contiguous();
  const float* px = xd.data<float>();

  // Per-channel sum and sum of squares, and the count, over all ranks.
  std::vector<double> stats(2 * l.c + 1, 0.0);
  for (int64_t n = 0; n < l.n; ++n) {
    for (int64_t c = 0; c < l.c; ++c) {
      const float* row = px + (n * l.c + c) * l.hw;
      double s = 0, q = 0;
      for (int64_t i = 0; i < l.hw; ++i) {
        s += row[i];
        q += double{row[i]} * row[i];
      }
      stats[c] += s;
      stats[l.c + c] += q;
    }
  }
  stats[2 * l.c] = static_cast<double>(l.n * l.hw);
  SumOverRanks(group, stats.data(), stats.size(), error.get());
  const double m = stats[2 * l.c];
  CHECK_GT(m, 1) << "SyncBatchNorm: expected more than 1 value per channel "
                 << "over all ranks, got " << m;
  std::vector<double> mean(l.c), var(l.c), inv_std(l.c);
  for (int64_t c = 0; c < l.c; ++c) {
    mean[c] = stats[c] / m;
    var[c] = std::max(0.0, stats[l.c + c] / m - mean[c] * mean[c]);
    inv_std[c] = 1.0 / std::sqrt(var[c] + eps);
  }
  if (running_mean.defined()) {
    float* r = running_mean.data<float>();
    for (int64_t c = 0; c < l.c; ++c) {
      r[c] = static_cast<float>((1.0 - momentum) * r[c] + momentum * mean[c]);
    }
  }
  if (running_var.defined()) {
    float* r = running_var.data<float>();
    for (int64_t c = 0; c < l.c; ++c) {
      r[c] = static_cast<float>((1.0 - momentum) * r[c] +
                                momentum * var[c] * m / (m - 1.0));
    }
  }

  const Tensor gd = weight.data().Contiguous();
  const Tensor bd = bias.data().Contiguous();
  Tensor y = Tensor::Empty(x.shape());
  float* py = y.data<float>();
  for (int64_t n = 0; n < l.n; ++n) {
    for (int64_t c = 0; c < l.c; ++c) {
      const double scale = gd.data<float>()[c] * inv_std[c];
      const double shift = bd.data<float>()[c] - mean[c] * scale;
      const int64_t at = (n * l.c + c) * l.hw;
      for (int64_t i = 0; i < l.hw; ++i) {
        float v = static_cast<float>(px[at + i] * scale + shift);
        py[at + i] = relu && !(v > 0.0f) ? 0.0f : v;
      }
    }
  }

  return autograd::Variable::FromOp(
      "SyncBatchNorm", y, {x, weight, bias},
      [&group, xd, gd, y, relu, mean, inv_std, m, l,
       error](const Tensor& grad) {
        const Tensor g = grad.Contiguous();
        const float* pdy = g.data<float>();
        const float* px = xd.data<float>();
        const float* py = y.data<float>();
        // dy past the ReLU's mask.
        const auto dy = [&](int64_t at) {
          return relu && !(py[at] > 0.0f) ? 0.0 : double{pdy[at]};
        };
        // Local sums of dy and dy * x_hat: beta's and gamma's gradients;
        // their global sums give x's.
        std::vector<double> sums(2 * l.c, 0.0);
        for (int64_t n = 0; n < l.n; ++n) {
          for (int64_t c = 0; c < l.c; ++c) {
            const int64_t at = (n * l.c + c) * l.hw;
            double s = 0, sx = 0;
            for (int64_t i = 0; i < l.hw; ++i) {
              const double d = dy(at + i);
              s += d;
              sx += d * (px[at + i] - mean[c]) * inv_std[c];
            }
            sums[c] += s;
            sums[l.c + c] += sx;
          }
        }
        Tensor dgamma = Tensor::Empty({l.c}), dbeta = Tensor::Empty({l.c});
        for (int64_t c = 0; c < l.c; ++c) {
          dbeta.data<float>()[c] = static_cast<float>(sums[c]);
          dgamma.data<float>()[c] = static_cast<float>(sums[l.c + c]);
        }
        SumOverRanks(group, sums.data(), sums.size(), error.get());
        Tensor dx = Tensor::Empty(xd.shape());
        float* pdx = dx.data<float>();
        for (int64_t n = 0; n < l.n; ++n) {
          for (int64_t c = 0; c < l.c; ++c) {
            const double mean_dy = sums[c] / m;
            const double mean_dy_xhat = sums[l.c + c] / m;
            const double k = gd.data<float>()[c] * inv_std[c];
            const int64_t at = (n * l.c + c) * l.hw;
            for (int64_t i = 0; i < l.hw; ++i) {
              const double xhat = (px[at + i] - mean[c]) * inv_std[c];
              pdx[at + i] = static_cast<float>(
                  k * (dy(at + i) - mean_dy - xhat * mean_dy_xhat));
            }
          }
        }
        return std::vector<Tensor>{dx, dgamma, dbeta};
      });
}

absl::Status SyncBatchNormLayers::TakeError() {
  return std::exchange(*error_, absl::OkStatus());
}

void SyncBatchNormLayers::Remove() {
  for (autograd::HookHandle& hook : hooks_) hook.Remove();
  hooks_.clear();
}

SyncBatchNormLayers ConvertSyncBatchNorm(nn::Module& model,
                                         ProcessGroup& group) {
  SyncBatchNormLayers layers;
  if (group.size() == 1) return layers;
  for (const auto& [name, module] : model.NamedModules()) {
    auto* bn = dynamic_cast<nn::BatchNormBase*>(module);
    if (bn == nullptr) continue;
    struct State {
      autograd::Variable input;  // the real input, during a training call
      bool active = false;
      Tensor counter;  // num_batches_tracked
    };
    auto state = std::make_shared<State>();
    for (const auto& [buffer, t] : bn->NamedBuffers()) {
      if (buffer == "num_batches_tracked") state->counter = t;
    }
    CHECK(state->counter.defined()) << "SyncBatchNorm: " << name
                                    << " has no num_batches_tracked";
    layers.hooks_.push_back(bn->RegisterForwardPreHook(
        [state, bn](nn::Module& m,
                    const autograd::Variable& x) -> autograd::Variable {
          if (!m.is_training() || x.rank() < 2) return {};
          state->input = x;
          state->active = true;
          m.Train(false);
          std::vector<int64_t> dims(x.rank(), 1);
          dims[1] = bn->options().num_features;
          return autograd::Variable(Tensor::Zeros(Shape(dims)));
        }));
    layers.hooks_.push_back(bn->RegisterForwardHook(
        [state, bn, &group, error = layers.error_](
            nn::Module& m, const autograd::Variable&,
            const autograd::Variable&) -> autograd::Variable {
          if (!state->active) return {};
          state->active = false;
          m.Train(true);
          const autograd::Variable x = std::exchange(state->input, {});
          ++state->counter.data<int64_t>()[0];
          return SyncBatchNormTrain(group, x, bn->weight(), bn->bias(),
                                    bn->running_mean(), bn->running_var(),
                                    bn->options().momentum, bn->options().eps,
                                    bn->AppliesRelu(), error);
        }));
    ++layers.count_;
  }
  return layers;
}

}  // namespace dive::distributed
