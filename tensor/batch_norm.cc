#include "tensor/batch_norm.h"

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/kernel_util.h"
#include "tensor/parallel.h"

namespace dive {
namespace {

using kernel_internal::ParallelFor;
using kernel_internal::SumDouble;
using kernel_internal::ThreadsIf;
using kernel_internal::WithActivation;

// Below this many elements the kernels run on one thread.
constexpr int64_t kParallelMin = 16384;

// x viewed as [N, C, S] with S = H * W (1 for an [N, C] input); m = N * S.
struct Layout {
  int64_t n, c, s;
  int64_t m() const { return n * s; }
  int64_t numel() const { return n * c * s; }
};

Layout CheckInput(const char* op, const Tensor& x) {
  CHECK(x.defined()) << op << ": x is undefined";
  CHECK(x.dtype() == DType::kFloat32 || x.dtype() == DType::kBfloat16)
      << op << ": x must be float32 or bfloat16, got " << DTypeName(x.dtype())
      << " tensor of shape " << x.shape();
  CHECK(x.rank() == 2 || x.rank() == 4)
      << op << ": x must be [N, C] or [N, C, H, W], got shape " << x.shape();
  Layout l;
  l.n = x.dim(0);
  l.c = x.dim(1);
  l.s = x.rank() == 4 ? x.dim(2) * x.dim(3) : 1;
  return l;
}

void CheckChannelTensor(const char* op, const char* name, const Tensor& t,
                        const Shape& x_shape) {
  CHECK(t.defined()) << op << ": " << name << " is undefined";
  CHECK(t.dtype() == DType::kFloat32)
      << op << ": " << name << " must be float32, got " << DTypeName(t.dtype());
  CHECK(t.rank() == 1 && t.dim(0) == x_shape[1])
      << op << ": " << name << " has shape " << t.shape() << " but x "
      << x_shape << " has " << x_shape[1] << " channels";
}

void CheckOutputDType(const char* op, DType dtype) {
  CHECK(dtype == DType::kFloat32 || dtype == DType::kBfloat16)
      << op << ": y must be float32 or bfloat16, got " << DTypeName(dtype);
}

inline float AsFloat(float v) { return v; }
inline float AsFloat(bfloat16 v) { return static_cast<float>(v); }

// A per-channel [C] tensor as doubles; `fallback` for each channel when `t`
// is undefined (a missing gamma or beta).
std::vector<double> ChannelVector(const char* op, const char* name,
                                  const Tensor& t, const Shape& x_shape,
                                  double fallback) {
  if (!t.defined()) return std::vector<double>(x_shape[1], fallback);
  CheckChannelTensor(op, name, t, x_shape);
  const std::vector<float> v = t.ToVector();
  return std::vector<double>(v.begin(), v.end());
}

std::vector<float> ToFloat(const std::vector<double>& v) {
  return std::vector<float>(v.begin(), v.end());
}

// out[c] = sum over (n, s) of f(c, i), i the flat index of (n, c, s), in
// double.
template <typename F>
void PerChannelSum(const Layout& l, F f, std::vector<double>* out) {
  out->assign(l.c, 0.0);
  double* o = out->data();
  if (l.s > 1) {
    ParallelFor(l.c, ThreadsIf(l.numel() > kParallelMin),
                [&](int64_t begin, int64_t end, int) {
                  for (int64_t c = begin; c < end; ++c) {
                    double total = 0.0;
                    for (int64_t n = 0; n < l.n; ++n) {
                      const int64_t base = (n * l.c + c) * l.s;
                      total += SumDouble(
                          l.s, [&](int64_t s) { return f(c, base + s); });
                    }
                    o[c] = total;
                  }
                });
  } else {
    // [N, C]: each thread sums a block of channels row by row, so the inner
    // loop runs over contiguous channels.
    ParallelFor(l.c, ThreadsIf(l.numel() > kParallelMin),
                [&](int64_t c0, int64_t c1, int) {
                  for (int64_t n = 0; n < l.n; ++n) {
                    const int64_t base = n * l.c;
                    for (int64_t c = c0; c < c1; ++c) o[c] += f(c, base + c);
                  }
                });
  }
}

// Calls f(c, i) for every element, i the flat index of (n, c, s).
template <typename F>
void PerChannelApply(const Layout& l, F f) {
  if (l.s > 1) {
    ParallelFor(l.n * l.c, ThreadsIf(l.numel() > kParallelMin),
                [&](int64_t begin, int64_t end, int) {
                  for (int64_t q = begin; q < end; ++q) {
                    const int64_t c = q % l.c, base = q * l.s;
                    for (int64_t s = 0; s < l.s; ++s) f(c, base + s);
                  }
                });
  } else {
    ParallelFor(l.n, ThreadsIf(l.numel() > kParallelMin),
                [&](int64_t begin, int64_t end, int) {
                  for (int64_t n = begin; n < end; ++n) {
                    const int64_t base = n * l.c;
                    for (int64_t c = 0; c < l.c; ++c) f(c, base + c);
                  }
                });
  }
}

// (x - mean) * scale + shift: the one expression both the forward and the
// fused ReLU's backward (which recomputes where the ReLU passed) evaluate.
inline float Affine(float x, float mean, float scale, float shift) {
  return (x - mean) * scale + shift;
}

// y = (x - mean[c]) * scale[c] + shift[c], then max(y, 0) with `relu` (NaN
// kept, as by ops::Relu); y of `y_dtype`.
Tensor Normalize(const Tensor& x, const Layout& l,
                 const std::vector<float>& mean,
                 const std::vector<float>& scale,
                 const std::vector<float>& shift, bool relu, DType y_dtype) {
  Tensor y = Tensor::Empty(x.shape(), y_dtype);
  const float* pm = mean.data();
  const float* psc = scale.data();
  const float* psh = shift.data();
  WithActivation(x, [&](const auto* px) {
    const auto normalize = [&](auto* py) {
      using Y = std::remove_pointer_t<decltype(py)>;
      if (relu) {
        PerChannelApply(l, [&](int64_t c, int64_t i) {
          const float v = Affine(AsFloat(px[i]), pm[c], psc[c], psh[c]);
          py[i] = Y(v < 0.0f ? 0.0f : v);
        });
      } else {
        PerChannelApply(l, [&](int64_t c, int64_t i) {
          py[i] = Y(Affine(AsFloat(px[i]), pm[c], psc[c], psh[c]));
        });
      }
    };
    if (y_dtype == DType::kBfloat16) {
      normalize(y.data<bfloat16>());
    } else {
      normalize(y.data<float>());
    }
  });
  return y;
}

// t[c] = (1 - momentum) * t[c] + momentum * v[c], written through t's view.
void UpdateRunning(Tensor& t, const std::vector<double>& v, float momentum) {
  float* p = t.data();
  const int64_t stride = t.strides()[0];
  for (size_t c = 0; c < v.size(); ++c) {
    float& r = p[c * stride];
    r = static_cast<float>((1.0 - momentum) * r + momentum * v[c]);
  }
}

}  // namespace

Tensor BatchNormTrainForward(const Tensor& x_in, const Tensor& gamma,
                             const Tensor& beta, Tensor running_mean,
                             Tensor running_var, float momentum, float eps,
                             BatchNormSaved* saved, bool relu, DType y_dtype) {
  static constexpr char kOp[] = "BatchNormTrainForward";
  const Layout l = CheckInput(kOp, x_in);
  CheckOutputDType(kOp, y_dtype);
  CHECK(saved != nullptr) << kOp << ": saved must not be null";
  CHECK_GT(l.m(), 1) << kOp
                     << ": expected more than 1 value per channel when "
                        "training, got input of shape "
                     << x_in.shape();
  const Shape& shape = x_in.shape();
  const std::vector<double> g = ChannelVector(kOp, "gamma", gamma, shape, 1.0);
  const std::vector<double> b = ChannelVector(kOp, "beta", beta, shape, 0.0);
  CHECK_EQ(running_mean.defined(), running_var.defined())
      << kOp
      << ": running_mean and running_var must be both defined or both "
         "undefined";
  if (running_mean.defined()) {
    CheckChannelTensor(kOp, "running_mean", running_mean, shape);
    CheckChannelTensor(kOp, "running_var", running_var, shape);
  }
  const Tensor x = x_in.Contiguous();
  const double m = static_cast<double>(l.m());

  // Two passes (mean, then squared deviations) for an accurate variance.
  std::vector<double> mean, var;
  WithActivation(x, [&](const auto* px) {
    PerChannelSum(
        l, [&](int64_t, int64_t i) { return double{AsFloat(px[i])}; }, &mean);
    for (double& v : mean) v /= m;
    PerChannelSum(
        l,
        [&](int64_t c, int64_t i) {
          const double d = AsFloat(px[i]) - mean[c];
          return d * d;
        },
        &var);
  });
  for (double& v : var) v /= m;

  std::vector<double> inv_std(l.c), scale(l.c);
  for (int64_t c = 0; c < l.c; ++c) {
    inv_std[c] = 1.0 / std::sqrt(var[c] + eps);
    scale[c] = g[c] * inv_std[c];
  }
  const std::vector<float> mean_f = ToFloat(mean), inv_std_f = ToFloat(inv_std);
  const std::vector<float> scale_f = ToFloat(scale), shift_f = ToFloat(b);
  Tensor y = Normalize(x, l, mean_f, scale_f, shift_f, relu, y_dtype);
  saved->mean = Tensor::FromVector(mean_f, {l.c});
  saved->inv_std = Tensor::FromVector(inv_std_f, {l.c});
  saved->relu = relu;
  saved->scale = relu ? Tensor::FromVector(scale_f, {l.c}) : Tensor();
  saved->shift = relu ? Tensor::FromVector(shift_f, {l.c}) : Tensor();

  if (running_mean.defined()) {
    std::vector<double> unbiased(var);
    for (double& v : unbiased) v *= m / (m - 1.0);
    UpdateRunning(running_mean, mean, momentum);
    UpdateRunning(running_var, unbiased, momentum);
  }
  return y;
}

Tensor BatchNormEvalForward(const Tensor& x_in, const Tensor& gamma,
                            const Tensor& beta, const Tensor& running_mean,
                            const Tensor& running_var, float eps, bool relu,
                            DType y_dtype) {
  static constexpr char kOp[] = "BatchNormEvalForward";
  const Layout l = CheckInput(kOp, x_in);
  CheckOutputDType(kOp, y_dtype);
  const Shape& shape = x_in.shape();
  const std::vector<double> g = ChannelVector(kOp, "gamma", gamma, shape, 1.0);
  const std::vector<double> b = ChannelVector(kOp, "beta", beta, shape, 0.0);
  CheckChannelTensor(kOp, "running_mean", running_mean, shape);
  CheckChannelTensor(kOp, "running_var", running_var, shape);
  const std::vector<float> rm = running_mean.ToVector();
  const std::vector<float> rv = running_var.ToVector();
  std::vector<float> scale(l.c);
  for (int64_t c = 0; c < l.c; ++c) {
    scale[c] = static_cast<float>(g[c] / std::sqrt(double{rv[c]} + eps));
  }
  return Normalize(x_in.Contiguous(), l, rm, scale, ToFloat(b), relu, y_dtype);
}

void BatchNormBackward(const Tensor& dy_in, const Tensor& x_in,
                       const Tensor& gamma, const BatchNormSaved& saved,
                       Tensor* dx, Tensor* dgamma, Tensor* dbeta) {
  static constexpr char kOp[] = "BatchNormBackward";
  const Layout l = CheckInput(kOp, x_in);
  const Shape& shape = x_in.shape();
  CHECK(dy_in.defined() && dy_in.dtype() == DType::kFloat32)
      << kOp << ": dy must be a defined float32 tensor";
  CHECK(dy_in.shape() == shape) << kOp << ": dy has shape " << dy_in.shape()
                                << " but x has shape " << shape;
  const std::vector<double> g = ChannelVector(kOp, "gamma", gamma, shape, 1.0);
  CheckChannelTensor(kOp, "saved.mean", saved.mean, shape);
  CheckChannelTensor(kOp, "saved.inv_std", saved.inv_std, shape);
  const std::vector<float> mean = saved.mean.ToVector();
  const std::vector<float> inv_std = saved.inv_std.ToVector();
  const Tensor x = x_in.Contiguous();
  const Tensor dy = dy_in.Contiguous();
  if (saved.relu) {
    CheckChannelTensor(kOp, "saved.scale", saved.scale, shape);
    CheckChannelTensor(kOp, "saved.shift", saved.shift, shape);
  }
  WithActivation(x, [&](const auto* px) {
    const float* pdy = dy.data();
    const float* pm = mean.data();
    // With a fused ReLU, the ReLU's gradient first: dy where the ReLU passed
    // its input (recomputed from x), in a buffer the passes below read.
    Tensor masked;
    if (saved.relu) {
      const std::vector<float> scale = saved.scale.ToVector();
      const std::vector<float> shift = saved.shift.ToVector();
      const float* psc = scale.data();
      const float* psh = shift.data();
      masked = Tensor::Empty(shape);
      float* pg = masked.data();
      PerChannelApply(l, [&](int64_t c, int64_t i) {
        // dy loaded unconditionally: a select, not a branch (a conditional
        // load is a branch on a random mask, 10x slower).
        const float d = pdy[i];
        pg[i] = Affine(AsFloat(px[i]), pm[c], psc[c], psh[c]) > 0.0f ? d : 0.0f;
      });
      pdy = pg;
    }

    // sum(dy) and sum(dy * (x - mean)); sum(dy * xhat) is the latter * inv_std.
    std::vector<double> sum_dy, sum_dy_xc;
    PerChannelSum(
        l, [&](int64_t, int64_t i) { return double{pdy[i]}; }, &sum_dy);
    PerChannelSum(
        l,
        [&](int64_t c, int64_t i) {
          return double{pdy[i]} * (double{AsFloat(px[i])} - double{pm[c]});
        },
        &sum_dy_xc);
    std::vector<double> sum_dy_xhat(l.c);
    for (int64_t c = 0; c < l.c; ++c) {
      sum_dy_xhat[c] = sum_dy_xc[c] * inv_std[c];
    }
    if (dbeta != nullptr) *dbeta = Tensor::FromVector(ToFloat(sum_dy), {l.c});
    if (dgamma != nullptr) {
      *dgamma = Tensor::FromVector(ToFloat(sum_dy_xhat), {l.c});
    }
    if (dx == nullptr) return;

    // dx = a * dy - b * (x - mean) - k with a = gamma * inv_std,
    // b = a * inv_std * sum(dy * xhat) / m and k = a * sum(dy) / m.
    const double m = static_cast<double>(l.m());
    std::vector<float> a(l.c), b(l.c), k(l.c);
    for (int64_t c = 0; c < l.c; ++c) {
      const double ac = g[c] * inv_std[c];
      a[c] = static_cast<float>(ac);
      b[c] = static_cast<float>(ac * inv_std[c] * sum_dy_xhat[c] / m);
      k[c] = static_cast<float>(ac * sum_dy[c] / m);
    }
    Tensor out = Tensor::Empty(shape);
    float* pdx = out.data();
    const float* pa = a.data();
    const float* pb = b.data();
    const float* pk = k.data();
    PerChannelApply(l, [&](int64_t c, int64_t i) {
      pdx[i] = pa[c] * pdy[i] - pb[c] * (AsFloat(px[i]) - pm[c]) - pk[c];
    });
    *dx = out;
  });
}

}  // namespace dive
