#include "tensor/pool.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "glog/logging.h"
#include "tensor/cpu.h"
#include "tensor/kernel_util.h"
#include "tensor/parallel.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace dive {
namespace {

using kernel_internal::CheckFloat4D;
using kernel_internal::CheckShape4D;
using kernel_internal::MakeWindow2d;
using kernel_internal::ParallelFor;
using kernel_internal::ThreadsIf;
using kernel_internal::ValidRange;

}  // namespace

namespace {

// The window over each of the input's planes (n * c of them).
struct PoolGeometry : kernel_internal::Window2d {
  int64_t planes;
};

PoolGeometry MakePoolGeometry(const char* op, const Shape& x,
                              const Pool2dParams& p) {
  CHECK_EQ(x.rank(), 4) << op << ": input must be 4-D (NCHW), got shape " << x;
  std::ostringstream os;
  os << " (x " << x << ", kernel " << p.kernel_h << "x" << p.kernel_w
     << ", stride " << p.stride_h << "x" << p.stride_w << ", padding "
     << p.pad_h << "x" << p.pad_w << ")";
  const std::string shapes = os.str();
  const PoolGeometry g{MakeWindow2d(op,
                                    {.h = x[2],
                                     .w = x[3],
                                     .kh = p.kernel_h,
                                     .kw = p.kernel_w,
                                     .sh = p.stride_h,
                                     .sw = p.stride_w,
                                     .ph = p.pad_h,
                                     .pw = p.pad_w},
                                    shapes),
                       /*planes=*/x[0] * x[1]};
  CHECK(2 * g.ph <= g.kh && 2 * g.pw <= g.kw)
      << op << ": padding must be at most half the kernel size" << shapes;
  return g;
}

// Windows that tile the input without overlap or padding (2x2, stride 2):
// every input belongs to at most one window.
bool Tiling(const PoolGeometry& g) {
  return g.ph == 0 && g.pw == 0 && g.kh == g.sh && g.kw == g.sw;
}

// The checks both pooling backward passes start with.
void CheckBackwardArgs(const char* op, const Tensor& dy,
                       const Shape& x_shape) {
  CheckFloat4D(op, "dy", dy);
  CheckShape4D(op, "x_shape", x_shape);
}

void CheckPoolGrad(const char* op, const Tensor& dy, const Shape& x_shape,
                   const PoolGeometry& g) {
  const Shape expected{x_shape[0], x_shape[1], g.oh, g.ow};
  CHECK(dy.shape() == expected)
      << op << ": dy has shape " << dy.shape() << " but pooling x " << x_shape
      << " gives " << expected;
}

}  // namespace

namespace {

// Folds one kernel column of one input row into a row of max-pool outputs:
// output j sees x_row[j * stride + offset] for j in [lo, hi). `row` is the
// row's flat index in its plane. NaN wins, as in PyTorch. Branch-free (the
// comparison is unpredictable on real data) and alias-free.
void MaxPoolRow(const float* __restrict plane, int64_t row, int64_t offset,
                int64_t stride, int64_t lo, int64_t hi, float* __restrict y,
                int64_t* __restrict idx) {
  const float* __restrict x = plane + row;
  for (int64_t j = lo; j < hi; ++j) {
    const int64_t iw = j * stride + offset;
    const float v = x[iw];
    const float cur = y[j];
    const bool take = (v > cur) | std::isnan(v);
    y[j] = take ? v : cur;
    idx[j] = take ? row + iw : idx[j];
  }
}

#ifdef __AVX512F__
// One output row of max pooling with stride 1 or 2, 16 outputs at a time:
// each output's window is scanned in (ih, iw) order in registers and the
// maximum and its index written once. The same rule as MaxPoolRow: a larger
// value or a NaN takes over; an all-padding window keeps -inf and the index
// of its first valid input.
void MaxPoolRowVector(const PoolGeometry& g, const float* __restrict plane,
                      int64_t h0, int64_t h1, float* __restrict y,
                      int64_t* __restrict idx) {
  const __m512i lane =
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  // Even elements of two vectors: x[2t] for t < 16 from x[0 : 32].
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20,
                                          22, 24, 26, 28, 30);
  const __m512i w = _mm512_set1_epi32(static_cast<int32_t>(g.w));
  for (int64_t j0 = 0; j0 < g.ow; j0 += 16) {
    const auto lanes =
        static_cast<__mmask16>((1u << std::min<int64_t>(16, g.ow - j0)) - 1u);
    // Input column of each output's first kernel column.
    const __m512i iw0 = _mm512_sub_epi32(
        _mm512_mullo_epi32(
            _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int32_t>(j0))),
            _mm512_set1_epi32(static_cast<int32_t>(g.sw))),
        _mm512_set1_epi32(static_cast<int32_t>(g.pw)));
    __m512 best = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    __m512i where =
        _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(h0 * g.w)),
                         _mm512_max_epi32(iw0, _mm512_setzero_si512()));
    for (int64_t ih = h0; ih < h1; ++ih) {
      const float* row = plane + ih * g.w;
      const __m512i row_start =
          _mm512_set1_epi32(static_cast<int32_t>(ih * g.w));
      for (int64_t b = 0; b < g.kw; ++b) {
        const __m512i iw =
            _mm512_add_epi32(iw0, _mm512_set1_epi32(static_cast<int32_t>(b)));
        // Unsigned compare: negative columns wrap to large values.
        const __mmask16 valid = _mm512_mask_cmplt_epu32_mask(lanes, iw, w);
        const int64_t first = j0 * g.sw - g.pw + b;  // column of lane 0
        __m512 v;
        if (g.sw == 1) {
          v = _mm512_maskz_loadu_ps(valid, row + first);
        } else {  // lane t reads row[first + 2t]: even elements of 32
          const uint32_t wide = _pdep_u32(valid, 0x55555555u);
          const __m512 lo = _mm512_maskz_loadu_ps(
              static_cast<__mmask16>(wide & 0xFFFFu), row + first);
          const __m512 hi = _mm512_maskz_loadu_ps(
              static_cast<__mmask16>(wide >> 16), row + first + 16);
          v = _mm512_permutex2var_ps(lo, evens, hi);
        }
        const __mmask16 take =
            _mm512_mask_cmp_ps_mask(valid, v, best, _CMP_GT_OQ) |
            _mm512_mask_cmp_ps_mask(valid, v, v, _CMP_UNORD_Q);
        best = _mm512_mask_mov_ps(best, take, v);
        where =
            _mm512_mask_mov_epi32(where, take, _mm512_add_epi32(row_start, iw));
      }
    }
    _mm512_mask_storeu_ps(y + j0, lanes, best);
    if (idx != nullptr) {
      _mm512_mask_storeu_epi64(
          idx + j0, static_cast<__mmask8>(lanes),
          _mm512_cvtepi32_epi64(_mm512_castsi512_si256(where)));
      _mm512_mask_storeu_epi64(
          idx + j0 + 8, static_cast<__mmask8>(lanes >> 8),
          _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(where, 1)));
    }
  }
}
#endif

}  // namespace

namespace {

// Max pooling of planes [begin, end) of x (px) into y (py), with the
// argmax indices into pidx when not null. A function of its own, its
// arguments locals, so that the stores of indices cannot alias the
// geometry (captured by reference, it was reloaded after every store).
void MaxPoolPlanes(const PoolGeometry g, const float* px, float* py,
                   int64_t* pidx, int64_t begin, int64_t end,
                   [[maybe_unused]] bool avx512) {
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  // Indices go here when the caller does not want them.
  std::vector<int64_t> scratch(pidx == nullptr ? g.ow : 0);
  for (int64_t q = begin; q < end; ++q) {
    const float* xq = px + q * in_plane;
    // Row by row: every output of row i starts at -inf (with the index of
    // its first valid input), then sees its window's inputs in (ih, iw)
    // order, one loop over the whole output row per (ih, kernel column).
    for (int64_t i = 0; i < g.oh; ++i) {
      float* yr = py + q * out_plane + i * g.ow;
      int64_t* ir =
          pidx == nullptr ? scratch.data() : pidx + q * out_plane + i * g.ow;
      const int64_t h0 = std::max<int64_t>(i * g.sh - g.ph, 0);
      const int64_t h1 = std::min(i * g.sh - g.ph + g.kh, g.h);
#ifdef __AVX512F__
      if (avx512 && g.sw <= 2) {
        MaxPoolRowVector(g, xq, h0, h1, yr, pidx == nullptr ? nullptr : ir);
        continue;
      }
#endif
      for (int64_t j = 0; j < g.ow; ++j) {
        yr[j] = -std::numeric_limits<float>::infinity();
        ir[j] = h0 * g.w + std::max<int64_t>(j * g.sw - g.pw, 0);
      }
      for (int64_t ih = h0; ih < h1; ++ih) {
        for (int64_t b = 0; b < g.kw; ++b) {
          int64_t jlo, jhi;
          ValidRange(g.w, b - g.pw, g.sw, g.ow, &jlo, &jhi);
          MaxPoolRow(xq, ih * g.w, b - g.pw, g.sw, jlo, jhi, yr, ir);
        }
      }
    }
  }
}

}  // namespace

Tensor MaxPool2dForward(const Tensor& x_in, const Pool2dParams& p,
                        Tensor* argmax) {
  static constexpr char kOp[] = "MaxPool2dForward";
  CheckFloat4D(kOp, "x", x_in);
  const PoolGeometry g = MakePoolGeometry(kOp, x_in.shape(), p);
  const Tensor x = x_in.Contiguous();
  const Shape out_shape{x.dim(0), x.dim(1), g.oh, g.ow};
  Tensor y = Tensor::Empty(out_shape);
  Tensor idx;
  int64_t* pidx = nullptr;
  if (argmax != nullptr) {
    idx = Tensor::Empty(out_shape, DType::kInt64);
    pidx = idx.data<int64_t>();
  }
  const float* px = x.data();
  float* py = y.data();
  const int64_t out_plane = g.oh * g.ow;
  const bool avx512 = ActiveIsa() >= Isa::kAvx512;
  ParallelFor(g.planes, ThreadsIf(g.planes * out_plane > 4096),
              [&](int64_t begin, int64_t end, int) {
                MaxPoolPlanes(g, px, py, pidx, begin, end, avx512);
              });
  if (argmax != nullptr) *argmax = idx;
  return y;
}

Tensor MaxPool2dBackward(const Tensor& dy_in, const Tensor& argmax_in,
                         const Shape& x_shape) {
  static constexpr char kOp[] = "MaxPool2dBackward";
  CheckBackwardArgs(kOp, dy_in, x_shape);
  CHECK(argmax_in.defined() && argmax_in.dtype() == DType::kInt64)
      << kOp << ": argmax must be a defined int64 tensor";
  CHECK(argmax_in.shape() == dy_in.shape())
      << kOp << ": argmax has shape " << argmax_in.shape()
      << " but dy has shape " << dy_in.shape();
  CHECK(dy_in.dim(0) == x_shape[0] && dy_in.dim(1) == x_shape[1])
      << kOp << ": dy " << dy_in.shape() << " and x " << x_shape
      << " differ in batch or channels";
  const Tensor dy = dy_in.Contiguous();
  const Tensor argmax = argmax_in.Contiguous();
  Tensor dx = Tensor::Zeros(x_shape);
  const int64_t planes = x_shape[0] * x_shape[1];
  const int64_t in_plane = x_shape[2] * x_shape[3];
  const int64_t out_plane = dy.dim(2) * dy.dim(3);
  const float* pdy = dy.data();
  const int64_t* pidx = argmax.data<int64_t>();
  float* pdx = dx.data();
  ParallelFor(planes, ThreadsIf(planes * out_plane > 4096),
              [&](int64_t begin, int64_t end, int) {
                for (int64_t q = begin; q < end; ++q) {
                  const float* dyq = pdy + q * out_plane;
                  const int64_t* iq = pidx + q * out_plane;
                  float* dxq = pdx + q * in_plane;
                  for (int64_t k = 0; k < out_plane; ++k) {
                    DCHECK(iq[k] >= 0 && iq[k] < in_plane)
                        << kOp << ": argmax " << iq[k] << " outside a plane of "
                        << in_plane;
                    dxq[iq[k]] += dyq[k];
                  }
                }
              });
  return dx;
}

namespace {

// The factor of an average over a window: 1 / (kh * kw). Computed by each
// worker, so that it is a local of the worker's loop, which the stores to
// the output rows cannot alias (a captured float could be reloaded after
// every store, unvectorized: AvgPool2dForward ran 20% slower).
float AvgScale(const PoolGeometry& g) {
  return 1.0f / static_cast<float>(g.kh * g.kw);
}

}  // namespace

namespace {

// Average pooling over whole tiles (Tiling) of planes [begin, end) of x
// (px) into y (py): each input read once, y[i, j] = scale * the sum of its
// kh x kw tile. A function of its own, its arguments locals, which the
// stores cannot alias (captured by reference they were reloaded: 25% slower).
void AvgPoolTiles(const PoolGeometry g, const float* px, float* py,
                  int64_t begin, int64_t end) {
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  const float scale = AvgScale(g);
  for (int64_t q = begin; q < end; ++q) {
    for (int64_t i = 0; i < g.oh; ++i) {
      const float* __restrict xr = px + q * in_plane + i * g.kh * g.w;
      float* __restrict yr = py + q * out_plane + i * g.ow;
      if (g.kw == 2) {  // LeNet's and most CNNs' 2x2 pooling
        for (int64_t j = 0; j < g.ow; ++j) {
          float sum = 0.0f;
          for (int64_t a = 0; a < g.kh; ++a) {
            sum += xr[a * g.w + 2 * j] + xr[a * g.w + 2 * j + 1];
          }
          yr[j] = sum * scale;
        }
      } else {
        for (int64_t j = 0; j < g.ow; ++j) {
          float sum = 0.0f;
          for (int64_t a = 0; a < g.kh; ++a) {
            for (int64_t b = 0; b < g.kw; ++b) {
              sum += xr[a * g.w + j * g.kw + b];
            }
          }
          yr[j] = sum * scale;
        }
      }
    }
  }
}

}  // namespace

Tensor AvgPool2dForward(const Tensor& x_in, const Pool2dParams& p) {
  static constexpr char kOp[] = "AvgPool2dForward";
  CheckFloat4D(kOp, "x", x_in);
  const PoolGeometry g = MakePoolGeometry(kOp, x_in.shape(), p);
  const Tensor x = x_in.Contiguous();
  Tensor y = Tensor::Empty({x.dim(0), x.dim(1), g.oh, g.ow});
  const float* px = x.data();
  float* py = y.data();
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  if (Tiling(g)) {
    ParallelFor(g.planes, ThreadsIf(g.planes * out_plane > 4096),
                [&](int64_t begin, int64_t end, int) {
                  AvgPoolTiles(g, px, py, begin, end);
                });
    return y;
  }
  ParallelFor(g.planes, ThreadsIf(g.planes * out_plane > 4096),
              [&](int64_t begin, int64_t end, int) {
                const float scale = AvgScale(g);  // not aliased by the stores
                for (int64_t q = begin; q < end; ++q) {
                  const float* xq = px + q * in_plane;
                  for (int64_t i = 0; i < g.oh; ++i) {
                    float* yr = py + q * out_plane + i * g.ow;
                    const int64_t h0 = std::max<int64_t>(i * g.sh - g.ph, 0);
                    const int64_t h1 = std::min(i * g.sh - g.ph + g.kh, g.h);
                    std::fill(yr, yr + g.ow, 0.0f);
                    for (int64_t ih = h0; ih < h1; ++ih) {
                      const float* xr = xq + ih * g.w;
                      for (int64_t b = 0; b < g.kw; ++b) {
                        int64_t jlo, jhi;
                        ValidRange(g.w, b - g.pw, g.sw, g.ow, &jlo, &jhi);
                        const int64_t off = b - g.pw;
                        if (g.sw == 1) {
                          for (int64_t j = jlo; j < jhi; ++j)
                            yr[j] += xr[j + off];
                        } else {
                          for (int64_t j = jlo; j < jhi; ++j)
                            yr[j] += xr[j * g.sw + off];
                        }
                      }
                    }
                    for (int64_t j = 0; j < g.ow; ++j) yr[j] *= scale;
                  }
                }
              });
  return y;
}

Tensor AvgPool2dBackward(const Tensor& dy_in, const Shape& x_shape,
                         const Pool2dParams& p) {
  static constexpr char kOp[] = "AvgPool2dBackward";
  CheckBackwardArgs(kOp, dy_in, x_shape);
  const PoolGeometry g = MakePoolGeometry(kOp, x_shape, p);
  CheckPoolGrad(kOp, dy_in, x_shape, g);
  const Tensor dy = dy_in.Contiguous();
  const bool tiling = Tiling(g);
  Tensor dx = tiling ? Tensor::Empty(x_shape) : Tensor::Zeros(x_shape);
  const float* pdy = dy.data();
  float* pdx = dx.data();
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  if (tiling) {
    // Each input written once: its tile's scaled gradient (0 for the rows
    // and columns past the last whole tile).
    ParallelFor(g.planes, ThreadsIf(g.planes * out_plane > 4096),
                [&](int64_t begin, int64_t end, int) {
                  const float scale = AvgScale(g);  // not aliased by the stores
                  for (int64_t q = begin; q < end; ++q) {
                    float* dxq = pdx + q * in_plane;
                    for (int64_t i = 0; i < g.oh; ++i) {
                      const float* __restrict dyr =
                          pdy + q * out_plane + i * g.ow;
                      for (int64_t a = 0; a < g.kh; ++a) {
                        float* __restrict dxr = dxq + (i * g.kh + a) * g.w;
                        if (g.kw == 2) {
                          for (int64_t j = 0; j < g.ow; ++j) {
                            dxr[2 * j] = dxr[2 * j + 1] = dyr[j] * scale;
                          }
                        } else {
                          for (int64_t j = 0; j < g.ow; ++j) {
                            for (int64_t b = 0; b < g.kw; ++b) {
                              dxr[j * g.kw + b] = dyr[j] * scale;
                            }
                          }
                        }
                        std::fill(dxr + g.ow * g.kw, dxr + g.w, 0.0f);
                      }
                    }
                    std::fill(dxq + g.oh * g.kh * g.w, dxq + in_plane, 0.0f);
                  }
                });
    return dx;
  }
  ParallelFor(g.planes, ThreadsIf(g.planes * out_plane > 4096),
              [&](int64_t begin, int64_t end, int) {
                const float scale = AvgScale(g);  // not aliased by the stores
                std::vector<float> scaled(g.ow);
                for (int64_t q = begin; q < end; ++q) {
                  float* dxq = pdx + q * in_plane;
                  for (int64_t i = 0; i < g.oh; ++i) {
                    const float* dyr = pdy + q * out_plane + i * g.ow;
                    for (int64_t j = 0; j < g.ow; ++j)
                      scaled[j] = dyr[j] * scale;
                    const int64_t h0 = std::max<int64_t>(i * g.sh - g.ph, 0);
                    const int64_t h1 = std::min(i * g.sh - g.ph + g.kh, g.h);
                    for (int64_t ih = h0; ih < h1; ++ih) {
                      float* dxr = dxq + ih * g.w;
                      for (int64_t b = 0; b < g.kw; ++b) {
                        int64_t jlo, jhi;
                        ValidRange(g.w, b - g.pw, g.sw, g.ow, &jlo, &jhi);
                        // Within one kernel column the outputs write distinct
                        // inputs.
                        for (int64_t j = jlo; j < jhi; ++j) {
                          dxr[j * g.sw + b - g.pw] += scaled[j];
                        }
                      }
                    }
                  }
                }
              });
  return dx;
}

}  // namespace dive
