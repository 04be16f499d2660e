#include "tensor/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/kernel_util.h"
#include "tensor/memory_format.h"
#include "tensor/parallel.h"

namespace dive {
namespace {

using kernel_internal::AsFloat;
using kernel_internal::ParallelFor;
using kernel_internal::ThreadsIf;
using kernel_internal::WithActivation;

// Below this many elements the kernels run on one thread.
constexpr int64_t kParallelMin = 16384;

// x viewed as [N, C, S] with S = H * W (1 for an [N, C] input); m = N * S.
// A channels-last [N, C, H, W] input is viewed as [N * H * W, C, 1], the
// rows of a matrix of C columns, which is how it lies in memory.
struct Layout {
  int64_t n, c, s;
  int64_t m() const { return n * s; }
  int64_t numel() const { return n * c * s; }
};

// Planes of fewer than kSmallPlane elements (ResNet-18's and DenseNet's last
// maps: 3x3 and 6x6 at 96 px) are too short for the per-plane loops below,
// whose vector lanes and double sums they barely fill, and whose scalar
// remainder branches on the ReLU. The kernels view such an input as the
// rows of an [N, C*S] matrix instead, the layout of an [N, C] input, which
// they run along the contiguous C*S entries of a row: each channel's values
// repeated S times (Expand), and each channel's S sums added up (Fold).
constexpr int64_t kSmallPlane = 16;

bool AsRows(const Layout& l) { return l.s < kSmallPlane; }
// The layout the elementwise and sum kernels run on.
Layout KernelLayout(const Layout& l) {
  return AsRows(l) ? Layout{l.n, l.c * l.s, 1} : l;
}

// v[c] repeated s times each, for the rows of an [N, C*S] view (v itself for
// an input not viewed as rows).
template <typename V>
std::vector<V> Expand(const Layout& l, const std::vector<V>& v) {
  if (!AsRows(l) || l.s == 1) return v;
  std::vector<V> out(v.size() * l.s);
  for (size_t c = 0; c < v.size(); ++c) {
    std::fill_n(out.begin() + c * l.s, l.s, v[c]);
  }
  return out;
}

// The inverse for sums: each channel's l.s sums of an [N, C*S] view added up,
// in order.
std::vector<double> Fold(const Layout& l, const std::vector<double>& v) {
  if (!AsRows(l) || l.s == 1) return v;
  std::vector<double> out(l.c, 0.0);
  for (int64_t c = 0; c < l.c; ++c) {
    for (int64_t k = 0; k < l.s; ++k) out[c] += v[c * l.s + k];
  }
  return out;
}

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

// x as the kernels read it: itself where it is channels-last (and then
// `*l` its rows), else contiguous.
Tensor Dense(const Tensor& x, Layout* l) {
  if (MemoryFormatOf(x) != MemoryFormat::kChannelsLast) return x.Contiguous();
  *l = Layout{l->n * l->s, l->c, 1};
  return x;
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

// Two sums over one (n, c) plane of a channel, a few thousand values at
// most: f(i) returns element i's two terms, added into kLanes float
// accumulators each, element i into lane i % kLanes (a vector register; the
// "omp simd" makes sure the loop over the lanes vectorizes), then the tail
// and the lanes in double, added to *a and *b; a channel's planes are added
// up in double. The order of the sums is fixed, whatever the element type,
// so a bf16 activation gives exactly what its float32 copy gives.
constexpr int kLanes = 16;

struct Terms {
  float a, b;
};

template <typename F>
void PlaneSums(int64_t n, F f, double* a, double* b) {
  float acc_a[kLanes] = {}, acc_b[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
#pragma omp simd
    for (int k = 0; k < kLanes; ++k) {
      const Terms t = f(i + k);
      acc_a[k] += t.a;
      acc_b[k] += t.b;
    }
  }
  double sum_a = 0.0, sum_b = 0.0;
  for (; i < n; ++i) {
    const Terms t = f(i);
    sum_a += t.a;
    sum_b += t.b;
  }
  for (int k = 0; k < kLanes; ++k) {
    sum_a += acc_a[k];
    sum_b += acc_b[k];
  }
  *a += sum_a;
  *b += sum_b;
}

// Two sums per column j over the rows of x viewed as [l.n, l.c] (l.s == 1),
// the terms of row r and column j given by terms(r, j). Blocks of
// kBlockRows rows run in parallel, each summed kRows rows at a time in
// float (along the contiguous columns of a row), then in double; the
// blocks' sums are added in block order, so the result does not depend on
// the number of threads.
template <typename F>
void ColumnSums(const Layout& l, F terms, std::vector<double>* sum_a,
                std::vector<double>* sum_b) {
  constexpr int64_t kBlockRows = 256, kRows = 16;
  const int64_t blocks = (l.n + kBlockRows - 1) / kBlockRows;
  std::vector<double> part_a(blocks * l.c, 0.0), part_b(blocks * l.c, 0.0);
  ParallelFor(blocks, ThreadsIf(l.numel() > kParallelMin),
              [&](int64_t b0, int64_t b1, int) {
                std::vector<float> acc_a(l.c), acc_b(l.c);
                for (int64_t b = b0; b < b1; ++b) {
                  double* __restrict pa = part_a.data() + b * l.c;
                  double* __restrict pb = part_b.data() + b * l.c;
                  const int64_t end = std::min(l.n, (b + 1) * kBlockRows);
                  for (int64_t r0 = b * kBlockRows; r0 < end; r0 += kRows) {
                    float* __restrict aa = acc_a.data();
                    float* __restrict ab = acc_b.data();
                    std::fill(aa, aa + l.c, 0.0f);
                    std::fill(ab, ab + l.c, 0.0f);
                    for (int64_t r = r0; r < std::min(end, r0 + kRows); ++r) {
#pragma omp simd
                      for (int64_t j = 0; j < l.c; ++j) {
                        const Terms t = terms(r, j);
                        aa[j] += t.a;
                        ab[j] += t.b;
                      }
                    }
                    for (int64_t j = 0; j < l.c; ++j) {
                      pa[j] += aa[j];
                      pb[j] += ab[j];
                    }
                  }
                }
              });
  sum_a->assign(l.c, 0.0);
  sum_b->assign(l.c, 0.0);
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t j = 0; j < l.c; ++j) {
      (*sum_a)[j] += part_a[b * l.c + j];
      (*sum_b)[j] += part_b[b * l.c + j];
    }
  }
}

// Each channel's mean and biased variance, reading x once from memory. For
// [N, C, H, W], per (n, c) plane: its sum, for a shift a (the plane's mean
// rounded to float), then, while the plane is in cache, D = sum(x - a) and
// Q = sum((x - a)^2), whose terms are small and exact to float's precision
// whatever the offset of x. Over the planes, exactly:
//   mean = sum(S * a + D) / m,
//   m * var = sum(Q + 2 * (a - mean) * D + S * (a - mean)^2).
// For [N, C], channels-last inputs and small planes, the same over the
// columns of x viewed as rows (ColumnSums), S = N each.
template <typename T>
void MeanVar(const Layout& l, const T* px, std::vector<double>* mean,
             std::vector<double>* var) {
  const double m = static_cast<double>(l.m());
  if (AsRows(l)) {
    const Layout rows = KernelLayout(l);
    // Column j's shift a_j (its first row's value), D_j = sum(x - a_j) and
    // Q_j = sum((x - a_j)^2).
    std::vector<float> shift(rows.c);
    for (int64_t j = 0; j < rows.c; ++j) shift[j] = AsFloat(px[j]);
    const float* sh = shift.data();
    std::vector<double> d, q;
    ColumnSums(
        rows,
        [&](int64_t r, int64_t j) {
          const float v = AsFloat(px[r * rows.c + j]) - sh[j];
          return Terms{v, v * v};
        },
        &d, &q);
    const std::vector<double> a(shift.begin(), shift.end());
    // Column j = c * l.s + k holds channel c.
    mean->assign(l.c, 0.0);
    var->assign(l.c, 0.0);
    const double n = static_cast<double>(rows.n);
    for (int64_t j = 0; j < rows.c; ++j) (*mean)[j / l.s] += n * a[j] + d[j];
    for (double& v : *mean) v /= m;
    for (int64_t j = 0; j < rows.c; ++j) {
      const double e = a[j] - (*mean)[j / l.s];
      (*var)[j / l.s] += q[j] + 2.0 * e * d[j] + n * e * e;
    }
    for (double& v : *var) v /= m;
    return;
  }
  mean->assign(l.c, 0.0);
  var->assign(l.c, 0.0);
  double* pmean = mean->data();
  double* pvar = var->data();
  const double s = static_cast<double>(l.s);
  ParallelFor(l.c, ThreadsIf(l.numel() > kParallelMin),
              [&](int64_t begin, int64_t end, int) {
                // Per plane: the shift a, D and Q.
                std::vector<double> shift(l.n), dev(l.n), sq(l.n);
                for (int64_t c = begin; c < end; ++c) {
                  double total = 0.0;
                  for (int64_t n = 0; n < l.n; ++n) {
                    const T* p = px + (n * l.c + c) * l.s;
                    double sum = 0.0, unused = 0.0;
                    PlaneSums(
                        l.s,
                        [&](int64_t i) {
                          return Terms{AsFloat(p[i]), 0.0f};
                        },
                        &sum, &unused);
                    const float a = static_cast<float>(sum / s);
                    dev[n] = sq[n] = 0.0;
                    PlaneSums(
                        l.s,
                        [&](int64_t i) {
                          const float d = AsFloat(p[i]) - a;
                          return Terms{d, d * d};
                        },
                        &dev[n], &sq[n]);
                    shift[n] = a;
                    total += s * a + dev[n];
                  }
                  const double mu = total / m;
                  double m2 = 0.0;
                  for (int64_t n = 0; n < l.n; ++n) {
                    const double e = shift[n] - mu;
                    m2 += sq[n] + 2.0 * e * dev[n] + s * e * e;
                  }
                  pmean[c] = mu;
                  pvar[c] = m2 / m;
                }
              });
}

// (x - mean) * scale + shift: the one expression both the forward and the
// fused ReLU's backward (which recomputes where the ReLU passed) evaluate.
inline float Affine(float x, float mean, float scale, float shift) {
  return (x - mean) * scale + shift;
}

// The gradient reaching BatchNorm's output: dy, or with the fused ReLU
// (kRelu), dy where the ReLU passed its input, recomputed from x (cheaper
// than a masked copy of dy written and read again). dy is loaded
// unconditionally: a select, not a branch (a conditional load is a branch
// on a random mask, 10x slower).
template <bool kRelu>
inline float OutputGrad(float dy, float x, float mean, float scale,
                        float shift) {
  if constexpr (kRelu) return Affine(x, mean, scale, shift) > 0.0f ? dy : 0.0f;
  return dy;
}

// sum_g[c] = sum of g and sum_gx[c] = sum of g * (x - mean[c]) over channel
// c, g = OutputGrad<kRelu>(dy, x, ...), in one pass over x and dy (by
// PlaneSums for [N, C, H, W]); scale and shift, l.c entries each, are read
// only with kRelu.
template <bool kRelu, typename T>
void GradSums(const Layout& l, const T* px, const float* pdy, const float* mean,
              const float* scale, const float* shift,
              std::vector<double>* sum_g, std::vector<double>* sum_gx) {
  if (l.s == 1) {
    // [N, C], channels-last inputs and small planes: by rows.
    ColumnSums(
        l,
        [&](int64_t r, int64_t c) {
          const int64_t i = r * l.c + c;
          const float x = AsFloat(px[i]);
          const float g =
              OutputGrad<kRelu>(pdy[i], x, mean[c], scale[c], shift[c]);
          return Terms{g, g * (x - mean[c])};
        },
        sum_g, sum_gx);
    return;
  }
  sum_g->assign(l.c, 0.0);
  sum_gx->assign(l.c, 0.0);
  double* sg = sum_g->data();
  double* sgx = sum_gx->data();
  ParallelFor(
      l.c, ThreadsIf(l.numel() > kParallelMin),
      [&](int64_t begin, int64_t end, int) {
        for (int64_t c = begin; c < end; ++c) {
          const float mu = mean[c], sc = scale[c], sh = shift[c];
          for (int64_t n = 0; n < l.n; ++n) {
            const T* x = px + (n * l.c + c) * l.s;
            const float* dy = pdy + (n * l.c + c) * l.s;
            PlaneSums(
                l.s,
                [&](int64_t i) {
                  const float xv = AsFloat(x[i]);
                  const float g = OutputGrad<kRelu>(dy[i], xv, mu, sc, sh);
                  return Terms{g, g * (xv - mu)};
                },
                &sg[c], &sgx[c]);
          }
        }
      });
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
#pragma omp simd
                    for (int64_t c = 0; c < l.c; ++c) f(c, base + c);
                  }
                });
  }
}

// y = (x - mean[c]) * scale[c] + shift[c], then max(y, 0) with `relu` (NaN
// kept, as by ops::Relu); y of `y_dtype`.
Tensor Normalize(const Tensor& x, const Layout& channels,
                 const std::vector<float>& mean_c,
                 const std::vector<float>& scale_c,
                 const std::vector<float>& shift_c, bool relu, DType y_dtype) {
  Tensor y = EmptyIn(x.shape(), y_dtype, MemoryFormatOf(x));
  const Layout l = KernelLayout(channels);
  const std::vector<float> mean = Expand(channels, mean_c);
  const std::vector<float> scale = Expand(channels, scale_c);
  const std::vector<float> shift = Expand(channels, shift_c);
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
  Layout l = CheckInput(kOp, x_in);
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
  const Tensor x = Dense(x_in, &l);
  const double m = static_cast<double>(l.m());

  std::vector<double> mean, var;
  WithActivation(x, [&](const auto* px) { MeanVar(l, px, &mean, &var); });

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
  Layout l = CheckInput(kOp, x_in);
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
  const Tensor x = Dense(x_in, &l);
  return Normalize(x, l, rm, scale, ToFloat(b), relu, y_dtype);
}

void BatchNormBackward(const Tensor& dy_in, const Tensor& x_in,
                       const Tensor& gamma, const BatchNormSaved& saved,
                       Tensor* dx, Tensor* dgamma, Tensor* dbeta) {
  static constexpr char kOp[] = "BatchNormBackward";
  Layout l = CheckInput(kOp, x_in);
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
  const Tensor x = Dense(x_in, &l);
  // dy in x's layout.
  const Tensor dy = ToMemoryFormat(dy_in, MemoryFormatOf(x));
  // The fused ReLU's affine map (zeros without it, where it is not read).
  std::vector<float> scale(l.c), shift(l.c);
  if (saved.relu) {
    CheckChannelTensor(kOp, "saved.scale", saved.scale, shape);
    CheckChannelTensor(kOp, "saved.shift", saved.shift, shape);
    scale = saved.scale.ToVector();
    shift = saved.shift.ToVector();
  }
  // The kernels' layout, and the per-channel values they read in it.
  const Layout kl = KernelLayout(l);
  const std::vector<float> mean_k = Expand(l, mean);
  const std::vector<float> scale_k = Expand(l, scale);
  const std::vector<float> shift_k = Expand(l, shift);
  const auto backward = [&](const auto* px, auto relu_tag) {
    constexpr bool kRelu = decltype(relu_tag)::value;
    const float* pdy = dy.data();
    const float* pm = mean_k.data();
    const float* psc = scale_k.data();
    const float* psh = shift_k.data();
    // sum(g) and sum(g * (x - mean)), g the gradient at BatchNorm's output;
    // sum(g * xhat) is the latter * inv_std.
    std::vector<double> sum_dy, sum_dy_xc;
    GradSums<kRelu>(kl, px, pdy, pm, psc, psh, &sum_dy, &sum_dy_xc);
    sum_dy = Fold(l, sum_dy);
    sum_dy_xc = Fold(l, sum_dy_xc);
    std::vector<double> sum_dy_xhat(l.c);
    for (int64_t c = 0; c < l.c; ++c) {
      sum_dy_xhat[c] = sum_dy_xc[c] * inv_std[c];
    }
    if (dbeta != nullptr) *dbeta = Tensor::FromVector(ToFloat(sum_dy), {l.c});
    if (dgamma != nullptr) {
      *dgamma = Tensor::FromVector(ToFloat(sum_dy_xhat), {l.c});
    }
    if (dx == nullptr) return;

    // dx = a * g - b * (x - mean) - k with a = gamma * inv_std,
    // b = a * inv_std * sum(dy * xhat) / m and k = a * sum(dy) / m.
    const double m = static_cast<double>(l.m());
    std::vector<float> a(l.c), b(l.c), k(l.c);
    for (int64_t c = 0; c < l.c; ++c) {
      const double ac = g[c] * inv_std[c];
      a[c] = static_cast<float>(ac);
      b[c] = static_cast<float>(ac * inv_std[c] * sum_dy_xhat[c] / m);
      k[c] = static_cast<float>(ac * sum_dy[c] / m);
    }
    Tensor out = EmptyIn(shape, DType::kFloat32, MemoryFormatOf(x));
    float* pdx = out.data();
    const std::vector<float> a_k = Expand(l, a), b_k = Expand(l, b);
    const std::vector<float> k_k = Expand(l, k);
    const float* pa = a_k.data();
    const float* pb = b_k.data();
    const float* pk = k_k.data();
    PerChannelApply(kl, [&](int64_t c, int64_t i) {
      const float x = AsFloat(px[i]);
      const float g = OutputGrad<kRelu>(pdy[i], x, pm[c], psc[c], psh[c]);
      pdx[i] = pa[c] * g - pb[c] * (x - pm[c]) - pk[c];
    });
    *dx = out;
  };
  WithActivation(x, [&](const auto* px) {
    if (saved.relu) {
      backward(px, std::true_type());
    } else {
      backward(px, std::false_type());
    }
  });
}

}  // namespace dive
