#include "tensor/pool.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "glog/logging.h"
#include "tensor/bf16.h"
#include "tensor/cpu.h"
#include "tensor/kernel_util.h"
#include "tensor/memory_format.h"
#include "tensor/parallel.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace dive {
namespace {

using kernel_internal::AsFloat;
using kernel_internal::CheckFloat4D;
using kernel_internal::CheckShape4D;
using kernel_internal::MakeWindow2d;
using kernel_internal::ParallelFor;
using kernel_internal::Scratch;
using kernel_internal::ThreadsIf;
using kernel_internal::ValidRange;
using kernel_internal::WithActivation;

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

}  // namespace

Shape Pool2dOutputShape(const char* op, const Shape& x, const Pool2dParams& p) {
  const PoolGeometry g = MakePoolGeometry(op, x, p);
  return Shape{x[0], x[1], g.oh, g.ow};
}

namespace {

// Windows that tile the input without overlap or padding (2x2, stride 2):
// every input belongs to at most one window.
bool Tiling(const PoolGeometry& g) {
  return g.ph == 0 && g.pw == 0 && g.kh == g.sh && g.kw == g.sw;
}

// The checks both pooling backward passes start with.
void CheckBackwardArgs(const char* op, const Tensor& dy, const Shape& x_shape) {
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
                int32_t* __restrict idx) {
  const float* __restrict x = plane + row;
  for (int64_t j = lo; j < hi; ++j) {
    const int64_t iw = j * stride + offset;
    const float v = x[iw];
    const float cur = y[j];
    const bool take = (v > cur) | std::isnan(v);
    y[j] = take ? v : cur;
    idx[j] = take ? static_cast<int32_t>(row + iw) : idx[j];
  }
}

// Max pooling of one plane, any window: row by row, every output of row i
// starts at -inf (with the index of its first valid input), then sees its
// window's inputs in (ih, iw) order, one loop over the whole output row per
// (ih, kernel column). `idx` is a row of scratch when the caller wants no
// indices (`keep_idx` false).
void MaxPoolPlaneScalar(const PoolGeometry& g, const float* xq, float* yq,
                        int32_t* idx, bool keep_idx) {
  for (int64_t i = 0; i < g.oh; ++i) {
    float* yr = yq + i * g.ow;
    int32_t* ir = keep_idx ? idx + i * g.ow : idx;
    const int64_t h0 = std::max<int64_t>(i * g.sh - g.ph, 0);
    const int64_t h1 = std::min(i * g.sh - g.ph + g.kh, g.h);
    for (int64_t j = 0; j < g.ow; ++j) {
      yr[j] = -std::numeric_limits<float>::infinity();
      ir[j] = static_cast<int32_t>(h0 * g.w +
                                   std::max<int64_t>(j * g.sw - g.pw, 0));
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

#ifdef __AVX512F__

// Bit k set when input column `first + k` (k < 64) lies in [0, w): the
// lanes of a row's loads that read the row, the others reading -inf (the
// padding, and what lies past the row's end).
inline uint64_t ColumnMask(int64_t first, int64_t w) {
  const int64_t lo = std::clamp<int64_t>(-first, 0, 64);
  const int64_t hi = std::clamp<int64_t>(w - first, 0, 64);
  const uint64_t below_hi = hi >= 64 ? ~uint64_t{0} : (uint64_t{1} << hi) - 1;
  const uint64_t below_lo = lo >= 64 ? ~uint64_t{0} : (uint64_t{1} << lo) - 1;
  return below_hi & ~below_lo;
}

// row[o : o + 16], -inf where `valid` (ColumnMask of row[0]) is clear.
inline __m512 LoadOrMinusInf(const float* row, uint64_t valid, int64_t o) {
  return _mm512_mask_loadu_ps(
      _mm512_set1_ps(-std::numeric_limits<float>::infinity()),
      static_cast<__mmask16>(valid >> o), row + o);
}

// Whether any of x[0 : n] is NaN.
bool AnyNan(const float* x, int64_t n) {
  __mmask16 nan = 0;
  int64_t k = 0;
  for (; k + 32 <= n; k += 32) {
    nan |= _mm512_cmp_ps_mask(_mm512_loadu_ps(x + k),
                              _mm512_loadu_ps(x + k + 16), _CMP_UNORD_Q);
  }
  for (; k < n; k += 16) {
    const auto m =
        static_cast<__mmask16>(n - k >= 16 ? 0xFFFFu : (1u << (n - k)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + k);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  }
  return nan != 0;
}

// Max pooling of one plane with stride 1 or 2 (kSw), 16 outputs of a row at
// a time: each output's window is scanned in (ih, iw) order in registers and
// the maximum (and its index when kIdx) written once, a larger value or
// (when kNan) a NaN taking over, as MaxPoolRow does; an all-padding-and--inf
// window keeps -inf and the index of its first valid input. The loads read
// -inf outside the row, so the borders need no code of their own.
//
// kKw is the window's width (2 or 3: the taps come from three loads per
// row by two-source permutes and an alignment, instead of two loads per
// tap), or 0 for any width up to 32 (loads per tap). Without NaN in the
// plane (kNan false) a single compare decides each step; without indices,
// a max instruction (which keeps `best` on ties: the first maximum's sign
// of zero).
template <int kKw, int kSw, bool kIdx, bool kNan>
void MaxPoolPlaneAvx512(const PoolGeometry& g, const float* __restrict xq,
                        float* __restrict yq, int32_t* __restrict iq) {
  static_assert(kSw == 1 || kSw == 2);
  const int64_t kw = kKw > 0 ? kKw : g.kw;
  const int32_t w = static_cast<int32_t>(g.w);
  const __m512i lane =
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i lane_cols = _mm512_mullo_epi32(lane, _mm512_set1_epi32(kSw));
  // x[2t] and x[2t + 1] for t < 16 from x[0 : 32] in two vectors.
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20,
                                          22, 24, 26, 28, 30);
  const __m512i odds = _mm512_add_epi32(evens, _mm512_set1_epi32(1));
  for (int64_t i = 0; i < g.oh; ++i) {
    const int64_t top = i * g.sh - g.ph;  // the window's first row
    const int64_t h0 = std::max<int64_t>(top, 0);
    const int64_t h1 = std::min(top + g.kh, g.h);
    float* yr = yq + i * g.ow;
    int32_t* ir = kIdx ? iq + i * g.ow : nullptr;
    for (int64_t j0 = 0; j0 < g.ow; j0 += 16) {
      const auto lanes = static_cast<__mmask16>(
          g.ow - j0 >= 16 ? 0xFFFFu : (1u << (g.ow - j0)) - 1u);
      const int64_t first = j0 * kSw - g.pw;  // lane 0's first column
      const uint64_t valid = ColumnMask(first, g.w);
      __m512 best = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
      // Each lane's index relative to (top, its first column), starting at
      // its first valid input.
      __m512i cols = _mm512_setzero_si512(), where = cols;
      if constexpr (kIdx) {
        cols = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(first)),
                                lane_cols);
        where = _mm512_add_epi32(
            _mm512_set1_epi32(static_cast<int32_t>((h0 - top) * g.w)),
            _mm512_max_epi32(_mm512_setzero_si512(),
                             _mm512_sub_epi32(_mm512_setzero_si512(), cols)));
      }
      // Folds v (at relative index `at`) into the running (m, arg): a
      // larger value or a NaN takes over.
      const auto fold = [](__m512& m, __m512i& arg, __m512 v, __m512i at) {
        if constexpr (kIdx || kNan) {
          __mmask16 take = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ);
          if constexpr (kNan) take |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
          m = _mm512_mask_mov_ps(m, take, v);
          if constexpr (kIdx) arg = _mm512_mask_mov_epi32(arg, take, at);
        } else {
          m = _mm512_max_ps(v, m);  // `m` on ties
        }
      };
      for (int64_t ih = h0; ih < h1; ++ih) {
        const float* row = xq + ih * g.w + first;
        const __m512i at =
            _mm512_set1_epi32(static_cast<int32_t>((ih - top) * w));
        const auto tap = [&](int64_t b) {
          return _mm512_add_epi32(at,
                                  _mm512_set1_epi32(static_cast<int32_t>(b)));
        };
        // The row's maximum (rm, rarg) first, starting from its first tap
        // (-inf where that is padding), then folded into the window's: the
        // rows' dependency chains overlap. The first maximum (or last NaN)
        // of the rows in order is the window's; a row of -inf never takes
        // over, leaving the first valid input's index.
        __m512 rm = best;
        __m512i rarg = at;
        const auto next = [&](__m512 v, int64_t b) {
          if (b == 0) {
            rm = v;
          } else {
            fold(rm, rarg, v, tap(b));
          }
        };
        if constexpr (kKw > 0 && kSw == 2) {
          const __m512 r0 = LoadOrMinusInf(row, valid, 0);
          const __m512 r1 = LoadOrMinusInf(row, valid, 16);
          const __m512 e = _mm512_permutex2var_ps(r0, evens, r1);
          next(e, 0);
          next(_mm512_permutex2var_ps(r0, odds, r1), 1);
          if constexpr (kKw == 3) {  // x[2t + 2]: e shifted by a lane
            const __m512 r2 =
                LoadOrMinusInf(row, valid & (uint64_t{1} << 32), 32);
            next(_mm512_castsi512_ps(_mm512_alignr_epi32(
                     _mm512_castps_si512(r2), _mm512_castps_si512(e), 1)),
                 2);
          }
        } else if constexpr (kKw > 0 && kSw == 1) {
          const __m512i r0 = _mm512_castps_si512(LoadOrMinusInf(row, valid, 0));
          const __m512i r1 =
              _mm512_castps_si512(LoadOrMinusInf(row, valid, 16));
          next(_mm512_castsi512_ps(r0), 0);
          next(_mm512_castsi512_ps(_mm512_alignr_epi32(r1, r0, 1)), 1);
          if constexpr (kKw == 3) {
            next(_mm512_castsi512_ps(_mm512_alignr_epi32(r1, r0, 2)), 2);
          }
        } else if constexpr (kSw == 1) {
          for (int64_t b = 0; b < kw; ++b) {
            next(LoadOrMinusInf(row, valid, b), b);
          }
        } else {
          for (int64_t b = 0; b < kw; ++b) {
            next(_mm512_permutex2var_ps(LoadOrMinusInf(row, valid, b), evens,
                                        LoadOrMinusInf(row, valid, b + 16)),
                 b);
          }
        }
        fold(best, where, rm, rarg);
      }
      _mm512_mask_storeu_ps(yr + j0, lanes, best);
      if constexpr (kIdx) {
        const __m512i origin = _mm512_add_epi32(
            _mm512_set1_epi32(static_cast<int32_t>(top * g.w)), cols);
        _mm512_mask_storeu_epi32(ir + j0, lanes,
                                 _mm512_add_epi32(origin, where));
      }
    }
  }
}

using PlaneKernel = void (*)(const PoolGeometry&, const float*, float*,
                             int32_t*);

// The AVX-512 kernels for g's window, with and without NaN handling, or
// nulls where g's stride or width has none (stride above 2; wider than
// the 64 columns a row's loads cover).
template <bool kIdx>
std::pair<PlaneKernel, PlaneKernel> PickAvx512(const PoolGeometry& g) {
  if (g.sw == 2 && g.kw == 2) {
    return {MaxPoolPlaneAvx512<2, 2, kIdx, false>,
            MaxPoolPlaneAvx512<2, 2, kIdx, true>};
  }
  if (g.sw == 2 && g.kw == 3) {
    return {MaxPoolPlaneAvx512<3, 2, kIdx, false>,
            MaxPoolPlaneAvx512<3, 2, kIdx, true>};
  }
  if (g.sw == 1 && g.kw == 3) {
    return {MaxPoolPlaneAvx512<3, 1, kIdx, false>,
            MaxPoolPlaneAvx512<3, 1, kIdx, true>};
  }
  if (g.sw == 2 && g.kw <= 32) {
    return {MaxPoolPlaneAvx512<0, 2, kIdx, false>,
            MaxPoolPlaneAvx512<0, 2, kIdx, true>};
  }
  if (g.sw == 1 && g.kw <= 48) {
    return {MaxPoolPlaneAvx512<0, 1, kIdx, false>,
            MaxPoolPlaneAvx512<0, 1, kIdx, true>};
  }
  return {nullptr, nullptr};
}
#endif

// Max pooling of planes [begin, end) of x (px) into y (py), with the
// argmax indices into pidx when not null. A function of its own, its
// arguments locals, so that the stores of indices cannot alias the
// geometry (captured by reference, it was reloaded after every store).
void MaxPoolPlanes(const PoolGeometry g, const float* px, float* py,
                   int32_t* pidx, int64_t begin, int64_t end,
                   [[maybe_unused]] bool avx512) {
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
#ifdef __AVX512F__
  if (avx512) {
    const auto [plain, nan] =
        pidx != nullptr ? PickAvx512<true>(g) : PickAvx512<false>(g);
    if (plain != nullptr) {
      for (int64_t q = begin; q < end; ++q) {
        const float* xq = px + q * in_plane;
        // Planes without NaN (nearly all) take the kernel that decides each
        // step with one compare. The scan also brings the plane into the
        // L1 cache.
        (AnyNan(xq, in_plane) ? nan : plain)(
            g, xq, py + q * out_plane,
            pidx == nullptr ? nullptr : pidx + q * out_plane);
      }
      return;
    }
  }
#endif
  // Indices go here when the caller does not want them.
  std::vector<int32_t> scratch(pidx == nullptr ? g.ow : 0);
  for (int64_t q = begin; q < end; ++q) {
    MaxPoolPlaneScalar(g, px + q * in_plane, py + q * out_plane,
                       pidx == nullptr ? scratch.data() : pidx + q * out_plane,
                       pidx != nullptr);
  }
}

// Runs planes(xf, q0, qn) over planes [begin, end) of a bf16 x [planes, h,
// w] a few at a time, xf holding planes [q0, q0 + qn) widened to float32 in
// a buffer of the caller's thread (about 64 KB): the pooling kernels read
// bf16 activations without a float32 copy of the whole tensor.
template <typename F>
void ForWidenedPlanes(const PoolGeometry& g, const bfloat16* x, int64_t begin,
                      int64_t end, const F& planes) {
  const int64_t in_plane = g.h * g.w;
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 14) / in_plane);
  const Tensor buffer = Scratch(std::min(chunk, end - begin) * in_plane);
  for (int64_t q0 = begin; q0 < end; q0 += chunk) {
    const int64_t qn = std::min(chunk, end - q0);
    Bf16ToFloat(x + q0 * in_plane, buffer.data(), qn * in_plane);
    planes(static_cast<const float*>(buffer.data()), q0, qn);
  }
}

}  // namespace

namespace {

// The window of output (oh, ow), clipped to the image: rows [h0, h1),
// columns [w0, w1).
struct Clipped {
  int64_t h0, h1, w0, w1;
};
Clipped ClippedWindow(const PoolGeometry& g, int64_t oh, int64_t ow) {
  return {std::max<int64_t>(oh * g.sh - g.ph, 0),
          std::min(oh * g.sh - g.ph + g.kh, g.h),
          std::max<int64_t>(ow * g.sw - g.pw, 0),
          std::min(ow * g.sw - g.pw + g.kw, g.w)};
}

// Max pooling of a channels-last x [n, h, w, c] in memory into y and, unless
// null, idx, both [n, oh, ow, c]: each output position's window, clipped to
// the image, read row by row of c contiguous channels, each compared with
// the running maxima of all channels at once. The same choices as
// MaxPoolPlanes: the first maximum on ties, NaN over any number (the last
// NaN), the first valid input where all are -inf.
template <typename T, typename Y>
void MaxPoolChannelsLast(const PoolGeometry& g, int64_t n, int64_t c,
                         const T* x, Y* y, int32_t* idx) {
  ParallelFor(
      n * g.oh, ThreadsIf(n * g.oh * g.ow * c > 4096),
      [&](int64_t begin, int64_t end, int) {
        // The running maxima: y's row itself when float32, else this
        // buffer, rounded into y (exactly: they are x's values) at the end.
        std::vector<float> buffer(std::is_same_v<Y, float> ? 0 : c);
        for (int64_t r = begin; r < end; ++r) {
          const T* xi = x + (r / g.oh) * g.h * g.w * c;
          for (int64_t ow = 0; ow < g.ow; ++ow) {
            const auto [h0, h1, w0, w1] = ClippedWindow(g, r % g.oh, ow);
            const int64_t out = (r * g.ow + ow) * c;
            float* __restrict best;
            if constexpr (std::is_same_v<Y, float>) {
              best = y + out;
            } else {
              best = buffer.data();
            }
            std::fill(best, best + c, -std::numeric_limits<float>::infinity());
            int32_t* __restrict at = idx == nullptr ? nullptr : idx + out;
            if (at != nullptr) {
              std::fill(at, at + c, static_cast<int32_t>(h0 * g.w + w0));
            }
            for (int64_t ih = h0; ih < h1; ++ih) {
              for (int64_t iw = w0; iw < w1; ++iw) {
                const T* __restrict xp = xi + (ih * g.w + iw) * c;
                const int32_t pos = static_cast<int32_t>(ih * g.w + iw);
                if (at == nullptr) {
                  for (int64_t k = 0; k < c; ++k) {
                    const float v = AsFloat(xp[k]);
                    best[k] = v > best[k] || v != v ? v : best[k];
                  }
                } else {
                  for (int64_t k = 0; k < c; ++k) {
                    const float v = AsFloat(xp[k]);
                    const bool take = v > best[k] || v != v;
                    best[k] = take ? v : best[k];
                    at[k] = take ? pos : at[k];
                  }
                }
              }
            }
            if constexpr (!std::is_same_v<Y, float>) {
              FloatToBf16(best, y + out, c);
            }
          }
        }
      });
}

}  // namespace

Tensor MaxPool2dForward(const Tensor& x_in, const Pool2dParams& p,
                        Tensor* argmax, DType y_dtype) {
  static constexpr char kOp[] = "MaxPool2dForward";
  CheckFloat4D(kOp, "x", x_in, /*bf16_ok=*/true);
  const bool bf16_out = y_dtype == DType::kBfloat16;
  CHECK(y_dtype == DType::kFloat32 ||
        (bf16_out && x_in.dtype() == DType::kBfloat16))
      << kOp << ": a " << DTypeName(y_dtype) << " result of a "
      << DTypeName(x_in.dtype())
      << " input; bf16 results need bf16 inputs (float32 ones any)";
  const PoolGeometry g = MakePoolGeometry(kOp, x_in.shape(), p);
  CHECK_LE(g.h * g.w, std::numeric_limits<int32_t>::max())
      << kOp << ": a plane of " << g.h << "x" << g.w
      << " is too large for int32 argmax indices";
  const Shape out_shape{x_in.dim(0), x_in.dim(1), g.oh, g.ow};
  if (MemoryFormatOf(x_in) == MemoryFormat::kChannelsLast) {
    constexpr MemoryFormat kLast = MemoryFormat::kChannelsLast;
    Tensor y = EmptyIn(out_shape, y_dtype, kLast);
    Tensor idx =
        argmax != nullptr ? EmptyIn(out_shape, DType::kInt32, kLast) : Tensor();
    int32_t* pidx = idx.defined() ? idx.data<int32_t>() : nullptr;
    WithActivation(x_in, [&](const auto* px) {
      const int64_t n = x_in.dim(0), c = x_in.dim(1);
      if (bf16_out) {
        MaxPoolChannelsLast(g, n, c, px, y.data<bfloat16>(), pidx);
      } else {
        MaxPoolChannelsLast(g, n, c, px, y.data<float>(), pidx);
      }
    });
    if (argmax != nullptr) *argmax = idx;
    return y;
  }
  const Tensor x = x_in.Contiguous();
  Tensor y = Tensor::Empty(out_shape, y_dtype);
  Tensor idx;
  int32_t* pidx = nullptr;
  if (argmax != nullptr) {
    idx = Tensor::Empty(out_shape, DType::kInt32);
    pidx = idx.data<int32_t>();
  }
  const int64_t out_plane = g.oh * g.ow;
  const bool avx512 = ActiveIsa() >= Isa::kAvx512;
  ParallelFor(
      g.planes, ThreadsIf(g.planes * out_plane > 4096),
      [&](int64_t begin, int64_t end, int) {
        if (x.dtype() == DType::kFloat32) {
          MaxPoolPlanes(g, x.data(), y.data(), pidx, begin, end, avx512);
          return;
        }
        // A bf16 y is pooled into float planes of this thread's, a chunk
        // of planes at a time, then rounded into y (exactly).
        Tensor buffer;
        ForWidenedPlanes(
            g, x.data<bfloat16>(), begin, end,
            [&](const float* xf, int64_t q0, int64_t qn) {
              float* yq = nullptr;
              if (bf16_out) {
                if (buffer.numel() < qn * out_plane) {
                  buffer = Scratch(qn * out_plane);
                }
                yq = buffer.data();
              } else {
                yq = y.data() + q0 * out_plane;
              }
              MaxPoolPlanes(g, xf, yq,
                            pidx == nullptr ? nullptr : pidx + q0 * out_plane,
                            0, qn, avx512);
              if (bf16_out) {
                FloatToBf16(yq, y.data<bfloat16>() + q0 * out_plane,
                            qn * out_plane);
              }
            });
      });
  if (argmax != nullptr) *argmax = idx;
  return y;
}

namespace {

// MaxPool2dBackward of a channels-last forward (argmax channels-last): dx
// channels-last, each image's on one thread, zeroed just before its
// scatter.
Tensor MaxPoolBackwardChannelsLast(const Tensor& dy_in, const Tensor& argmax,
                                   const Shape& x_shape) {
  constexpr MemoryFormat kLast = MemoryFormat::kChannelsLast;
  const Tensor dy = ToMemoryFormat(dy_in, kLast);
  Tensor dx = EmptyIn(x_shape, DType::kFloat32, kLast);
  const int64_t c = x_shape[1], in_image = x_shape[2] * x_shape[3] * c;
  const int64_t out_positions = dy.dim(2) * dy.dim(3);
  const float* pdy = dy.data();
  const int32_t* pidx = argmax.data<int32_t>();
  float* pdx = dx.data();
  ParallelFor(x_shape[0], ThreadsIf(x_shape[0] * in_image > 4096),
              [&](int64_t begin, int64_t end, int) {
                for (int64_t n = begin; n < end; ++n) {
                  float* __restrict dxn = pdx + n * in_image;
                  std::fill(dxn, dxn + in_image, 0.0f);
                  const int64_t out0 = n * out_positions * c;
                  for (int64_t o = 0; o < out_positions; ++o) {
                    const float* __restrict d = pdy + out0 + o * c;
                    const int32_t* __restrict at = pidx + out0 + o * c;
                    for (int64_t k = 0; k < c; ++k) {
                      DCHECK(at[k] >= 0 && at[k] * c < in_image)
                          << "MaxPool2dBackward: argmax " << at[k]
                          << " outside a plane of " << in_image / c;
                      dxn[at[k] * c + k] += d[k];
                    }
                  }
                }
              });
  return dx;
}

}  // namespace

Tensor MaxPool2dBackward(const Tensor& dy_in, const Tensor& argmax_in,
                         const Shape& x_shape) {
  static constexpr char kOp[] = "MaxPool2dBackward";
  CheckBackwardArgs(kOp, dy_in, x_shape);
  CHECK(argmax_in.defined() && argmax_in.dtype() == DType::kInt32)
      << kOp << ": argmax must be a defined int32 tensor (MaxPool2dForward's)";
  CHECK(argmax_in.shape() == dy_in.shape())
      << kOp << ": argmax has shape " << argmax_in.shape()
      << " but dy has shape " << dy_in.shape();
  CHECK(dy_in.dim(0) == x_shape[0] && dy_in.dim(1) == x_shape[1])
      << kOp << ": dy " << dy_in.shape() << " and x " << x_shape
      << " differ in batch or channels";
  if (MemoryFormatOf(argmax_in) == MemoryFormat::kChannelsLast) {
    return MaxPoolBackwardChannelsLast(dy_in, argmax_in, x_shape);
  }
  const Tensor dy = dy_in.Contiguous();
  const Tensor argmax = argmax_in.Contiguous();
  // Zeroed plane by plane just before its scatter, while the plane is in
  // the L1 cache: a whole-tensor Zeros first was a pass of its own.
  Tensor dx = Tensor::Empty(x_shape);
  const int64_t planes = x_shape[0] * x_shape[1];
  const int64_t in_plane = x_shape[2] * x_shape[3];
  const int64_t out_plane = dy.dim(2) * dy.dim(3);
  const float* pdy = dy.data();
  const int32_t* pidx = argmax.data<int32_t>();
  float* pdx = dx.data();
  ParallelFor(planes, ThreadsIf(planes * in_plane > 4096),
              [&](int64_t begin, int64_t end, int) {
                for (int64_t q = begin; q < end; ++q) {
                  const float* __restrict dyq = pdy + q * out_plane;
                  const int32_t* __restrict iq = pidx + q * out_plane;
                  float* __restrict dxq = pdx + q * in_plane;
                  std::fill(dxq, dxq + in_plane, 0.0f);
                  // dy and argmax 8 at a time read before the 8 stores
                  // into dx: when the three are of one size (stride 1,
                  // padding 1) a store to dx[k] 4K-aliases the next loads
                  // of dy[k + 1] and argmax[k + 1] one at a time, which
                  // then wait for it (2x slower on GoogLeNet's shape).
                  int64_t k = 0;
                  for (; k + 8 <= out_plane; k += 8) {
                    int32_t at[8];
                    float d[8];
                    for (int u = 0; u < 8; ++u) {
                      at[u] = iq[k + u];
                      d[u] = dyq[k + u];
                    }
                    for (int u = 0; u < 8; ++u) {
                      DCHECK(at[u] >= 0 && at[u] < in_plane)
                          << kOp << ": argmax " << at[u]
                          << " outside a plane of " << in_plane;
                      dxq[at[u]] += d[u];
                    }
                  }
                  for (; k < out_plane; ++k) {
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
      if (g.kh == 2 && g.kw == 2) {  // LeNet's and most CNNs' pooling
        // The loop below with its row loop unrolled, so that this one, over
        // j, is innermost and vectorizes (3.8x on LeNet's layer on a Zen 5).
        const float* __restrict xr1 = xr + g.w;
        for (int64_t j = 0; j < g.ow; ++j) {
          yr[j] =
              ((xr[2 * j] + xr[2 * j + 1]) + (xr1[2 * j] + xr1[2 * j + 1])) *
              scale;
        }
      } else if (g.kw == 2) {
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

// Average pooling of planes [begin, end) of x (px) into y (py).
void AvgPoolPlanes(const PoolGeometry g, const float* px, float* py,
                   int64_t begin, int64_t end) {
  if (Tiling(g)) return AvgPoolTiles(g, px, py, begin, end);
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
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
            for (int64_t j = jlo; j < jhi; ++j) yr[j] += xr[j + off];
          } else {
            for (int64_t j = jlo; j < jhi; ++j) yr[j] += xr[j * g.sw + off];
          }
        }
      }
      for (int64_t j = 0; j < g.ow; ++j) yr[j] *= scale;
    }
  }
}

}  // namespace

namespace {

// Average pooling of a channels-last x into a channels-last y, as
// MaxPoolChannelsLast walks it.
template <typename T>
void AvgPoolChannelsLast(const PoolGeometry& g, int64_t n, int64_t c,
                         const T* x, float* y) {
  const float scale = AvgScale(g);
  ParallelFor(n * g.oh, ThreadsIf(n * g.oh * g.ow * c > 4096),
              [&](int64_t begin, int64_t end, int) {
                for (int64_t r = begin; r < end; ++r) {
                  const T* xi = x + (r / g.oh) * g.h * g.w * c;
                  for (int64_t ow = 0; ow < g.ow; ++ow) {
                    const Clipped win = ClippedWindow(g, r % g.oh, ow);
                    float* __restrict sum = y + (r * g.ow + ow) * c;
                    std::fill(sum, sum + c, 0.0f);
                    for (int64_t ih = win.h0; ih < win.h1; ++ih) {
                      for (int64_t iw = win.w0; iw < win.w1; ++iw) {
                        const T* __restrict xp = xi + (ih * g.w + iw) * c;
                        for (int64_t k = 0; k < c; ++k)
                          sum[k] += AsFloat(xp[k]);
                      }
                    }
                    for (int64_t k = 0; k < c; ++k) sum[k] *= scale;
                  }
                }
              });
}

// AvgPool2dBackward into a channels-last dx: each image's on one thread.
Tensor AvgPoolBackwardChannelsLast(const PoolGeometry& g, const Tensor& dy_in,
                                   const Shape& x_shape) {
  constexpr MemoryFormat kLast = MemoryFormat::kChannelsLast;
  const Tensor dy = ToMemoryFormat(dy_in, kLast);
  Tensor dx = EmptyIn(x_shape, DType::kFloat32, kLast);
  const int64_t c = x_shape[1], in_image = g.h * g.w * c;
  const float scale = AvgScale(g);
  const float* pdy = dy.data();
  float* pdx = dx.data();
  ParallelFor(x_shape[0], ThreadsIf(x_shape[0] * in_image > 4096),
              [&](int64_t begin, int64_t end, int) {
                for (int64_t n = begin; n < end; ++n) {
                  float* dxn = pdx + n * in_image;
                  std::fill(dxn, dxn + in_image, 0.0f);
                  for (int64_t oh = 0; oh < g.oh; ++oh) {
                    for (int64_t ow = 0; ow < g.ow; ++ow) {
                      const Clipped win = ClippedWindow(g, oh, ow);
                      const float* __restrict d =
                          pdy + ((n * g.oh + oh) * g.ow + ow) * c;
                      for (int64_t ih = win.h0; ih < win.h1; ++ih) {
                        for (int64_t iw = win.w0; iw < win.w1; ++iw) {
                          float* __restrict dxp = dxn + (ih * g.w + iw) * c;
                          for (int64_t k = 0; k < c; ++k)
                            dxp[k] += d[k] * scale;
                        }
                      }
                    }
                  }
                }
              });
  return dx;
}

}  // namespace

Tensor AvgPool2dForward(const Tensor& x_in, const Pool2dParams& p) {
  static constexpr char kOp[] = "AvgPool2dForward";
  CheckFloat4D(kOp, "x", x_in, /*bf16_ok=*/true);
  const PoolGeometry g = MakePoolGeometry(kOp, x_in.shape(), p);
  if (MemoryFormatOf(x_in) == MemoryFormat::kChannelsLast) {
    Tensor y = EmptyIn({x_in.dim(0), x_in.dim(1), g.oh, g.ow}, DType::kFloat32,
                       MemoryFormat::kChannelsLast);
    WithActivation(x_in, [&](const auto* px) {
      AvgPoolChannelsLast(g, x_in.dim(0), x_in.dim(1), px, y.data());
    });
    return y;
  }
  const Tensor x = x_in.Contiguous();
  Tensor y = Tensor::Empty({x.dim(0), x.dim(1), g.oh, g.ow});
  float* py = y.data();
  const int64_t out_plane = g.oh * g.ow;
  ParallelFor(g.planes, ThreadsIf(g.planes * out_plane > 4096),
              [&](int64_t begin, int64_t end, int) {
                if (x.dtype() == DType::kFloat32) {
                  return AvgPoolPlanes(g, x.data(), py, begin, end);
                }
                ForWidenedPlanes(g, x.data<bfloat16>(), begin, end,
                                 [&](const float* xf, int64_t q0, int64_t qn) {
                                   AvgPoolPlanes(g, xf, py + q0 * out_plane, 0,
                                                 qn);
                                 });
              });
  return y;
}

Tensor AvgPool2dBackward(const Tensor& dy_in, const Shape& x_shape,
                         const Pool2dParams& p) {
  static constexpr char kOp[] = "AvgPool2dBackward";
  CheckBackwardArgs(kOp, dy_in, x_shape);
  const PoolGeometry g = MakePoolGeometry(kOp, x_shape, p);
  CheckPoolGrad(kOp, dy_in, x_shape, g);
  if (MemoryFormatOf(dy_in) == MemoryFormat::kChannelsLast) {
    return AvgPoolBackwardChannelsLast(g, dy_in, x_shape);
  }
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
