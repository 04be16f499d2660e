#include "cheatsheet/batch_norm.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "glog/logging.h"
#include "nn/batch_norm.h"
#include "tensor/random.h"

namespace dive::cheatsheet {
namespace {

// x as [N, C, S] with S = H * W (1 for [N, C]).
struct Layout {
  int64_t n, c, s;
};

Layout LayoutOf(const Tensor& x) {
  CHECK(x.rank() == 2 || x.rank() == 4) << "batch norm: x " << x.shape();
  return {x.dim(0), x.dim(1), x.rank() == 4 ? x.dim(2) * x.dim(3) : 1};
}

void SetTensor(const Tensor& t, const std::vector<float>& values) {
  CHECK_EQ(t.numel(), static_cast<int64_t>(values.size()));
  float* p = t.data<float>();
  for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
}

BatchNormCase RunCase(const std::string& what, const Shape& shape,
                      uint64_t seed) {
  BatchNormCase c;
  c.what = what;
  c.eps = 1e-5f;
  c.momentum = 0.1f;
  c.gamma = {2.0f, -1.0f, 0.5f};
  c.beta = {0.1f, 0.2f, -0.3f};
  Generator gen(seed);
  // Channels with different scales and offsets, as after an affine layer.
  c.x = gen.Normal(shape, 3.0f, 2.0f);
  c.x2 = gen.Normal(shape, -1.0f, 0.5f);
  c.x_test = gen.Normal(shape, 1.0f, 1.0f);

  std::shared_ptr<nn::BatchNormBase> bn;
  const nn::BatchNormOptions options =
      nn::BatchNormOptions(3).set_eps(c.eps).set_momentum(c.momentum);
  auto make = [&]() -> std::shared_ptr<nn::BatchNormBase> {
    if (shape.rank() == 2) return std::make_shared<nn::BatchNorm1d>(options);
    return std::make_shared<nn::BatchNorm2d>(options);
  };
  bn = make();
  SetTensor(bn->weight().data(), c.gamma);
  SetTensor(bn->bias().data(), c.beta);

  // ---- Training, first batch ----
  c.stats = ComputeChannelStats(c.x);
  c.y_by_hand = NormalizeByHand(c.x, c.stats.mean, c.stats.var_biased, c.gamma,
                                c.beta, c.eps);
  c.y_with_unbiased_var = NormalizeByHand(c.x, c.stats.mean,
                                          c.stats.var_unbiased, c.gamma,
                                          c.beta, c.eps);
  // Training mode is the module's, not autograd's.
  autograd::NoGradGuard no_grad;
  bn->Train();
  c.y_by_dive = (*bn)(autograd::Variable(c.x)).data();

  // ---- Moving averages over two batches ----
  (*bn)(autograd::Variable(c.x2));
  const ChannelStats stats2 = ComputeChannelStats(c.x2);
  const float mom = c.momentum;
  for (int k = 0; k < 3; ++k) {
    float mean = 0.0f, var = 1.0f;  // the initial buffers
    mean = (1 - mom) * mean + mom * c.stats.mean[k];
    var = (1 - mom) * var + mom * c.stats.var_unbiased[k];
    mean = (1 - mom) * mean + mom * stats2.mean[k];
    var = (1 - mom) * var + mom * stats2.var_unbiased[k];
    c.running_mean_by_formula.push_back(mean);
    c.running_var_by_formula.push_back(var);
  }
  c.running_mean_by_dive = bn->running_mean().ToVector();
  c.running_var_by_dive = bn->running_var().ToVector();
  c.batches_tracked = bn->num_batches_tracked();

  // ---- Prediction ----
  bn->Eval();
  c.predict_by_dive = (*bn)(autograd::Variable(c.x_test)).data();
  c.predict_by_hand =
      NormalizeByHand(c.x_test, c.running_mean_by_formula,
                      c.running_var_by_formula, c.gamma, c.beta, c.eps);

  // ---- gamma = sqrt(var + eps), beta = mu undo the normalization ----
  auto undo = make();
  std::vector<float> scale;
  for (float v : c.stats.var_biased) scale.push_back(std::sqrt(v + c.eps));
  SetTensor(undo->weight().data(), scale);
  SetTensor(undo->bias().data(), c.stats.mean);
  c.y_identity = (*undo)(autograd::Variable(c.x)).data();
  return c;
}

}  // namespace

ChannelStats ComputeChannelStats(const Tensor& x) {
  const Layout l = LayoutOf(x);
  const std::vector<float> v = x.Contiguous().ToVector();
  ChannelStats s;
  s.m = l.n * l.s;
  for (int64_t ch = 0; ch < l.c; ++ch) {
    double sum = 0;
    for (int64_t i = 0; i < l.n; ++i) {
      for (int64_t j = 0; j < l.s; ++j) sum += v[(i * l.c + ch) * l.s + j];
    }
    const double mean = sum / s.m;
    double sq = 0;
    for (int64_t i = 0; i < l.n; ++i) {
      for (int64_t j = 0; j < l.s; ++j) {
        const double d = v[(i * l.c + ch) * l.s + j] - mean;
        sq += d * d;
      }
    }
    s.mean.push_back(static_cast<float>(mean));
    s.var_biased.push_back(static_cast<float>(sq / s.m));
    s.var_unbiased.push_back(static_cast<float>(sq / (s.m - 1)));
  }
  return s;
}

Tensor NormalizeByHand(const Tensor& x, const std::vector<float>& mean,
                       const std::vector<float>& var,
                       const std::vector<float>& gamma,
                       const std::vector<float>& beta, float eps) {
  const Layout l = LayoutOf(x);
  const std::vector<float> v = x.Contiguous().ToVector();
  std::vector<float> y(v.size());
  for (int64_t i = 0; i < l.n; ++i) {
    for (int64_t ch = 0; ch < l.c; ++ch) {
      const double inv_std = 1.0 / std::sqrt(static_cast<double>(var[ch]) + eps);
      for (int64_t j = 0; j < l.s; ++j) {
        const int64_t at = (i * l.c + ch) * l.s + j;
        const double x_hat = (v[at] - mean[ch]) * inv_std;
        y[at] = static_cast<float>(gamma[ch] * x_hat + beta[ch]);
      }
    }
  }
  return Tensor::FromVector(y, x.shape());
}

BatchNormCase FullyConnectedCase(uint64_t seed) {
  return RunCase("6.11.1 fully connected: BatchNorm1d(3), x [4, 3]", {4, 3},
                 seed);
}

BatchNormCase ConvolutionCase(uint64_t seed) {
  return RunCase("6.11.2 convolution: BatchNorm2d(3), x [2, 3, 4, 5]",
                 {2, 3, 4, 5}, seed);
}

}  // namespace dive::cheatsheet
