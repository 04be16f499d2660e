#include "tensor/im2col.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "glog/logging.h"
#include "tensor/cpu.h"
#include "tensor/kernel_util.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace dive::conv_internal {
namespace {

using kernel_internal::ValidRange;

// The (image, i, j) of consecutive columns, walked without divisions.
struct PixelWalk {
  const ConvGeometry& g;
  int64_t image, i, j;
  PixelWalk(const ConvGeometry& geo, int64_t q)
      : g(geo),
        image(q / geo.Ohw()),
        i(q % geo.Ohw() / geo.ow),
        j(q % geo.ow) {}
  int32_t Ih() const { return static_cast<int32_t>(i * g.sh - g.ph); }
  int32_t Iw() const { return static_cast<int32_t>(j * g.sw - g.pw); }
  int32_t Base() const {
    return static_cast<int32_t>(image * g.InPlane() + Ih() * g.w + Iw());
  }
  void Next() {
    if (++j < g.ow) return;
    j = 0;
    if (++i < g.oh) return;
    i = 0;
    ++image;
  }
};

// The (c, a, b) of consecutive rows.
struct TapWalk {
  const ConvGeometry& g;
  int64_t c, a, b;
  TapWalk(const ConvGeometry& geo, int64_t r)
      : g(geo),
        c(r / (geo.kh * geo.kw)),
        a(r / geo.kw % geo.kh),
        b(r % geo.kw) {}
  int32_t Off() const { return static_cast<int32_t>((c * g.h + a) * g.w + b); }
  void Next() {
    if (++b < g.kw) return;
    b = 0;
    if (++a < g.kh) return;
    a = 0;
    ++c;
  }
};

constexpr int kLanes = 16;
constexpr int kMaxBlock = 1024;  // columns per Im2ColBlock table

// ih, iw and base of the columns of one block, read 16 lanes at a time.
struct Columns {
  alignas(64) int32_t ih[kMaxBlock], iw[kMaxBlock], base[kMaxBlock];
};

#ifdef __AVX512F__
// Kernels up to this size take the vector path of Im2ColBlock.
constexpr int kMaxTap = 16;
// Groups of up to this many runs of consecutive addresses are read with one
// masked load per run, others with a gather (~20 cycles here).
constexpr int kMaxRuns = 4;

// How one 16-column group reads a row of col: x[off + shift[t] + lane] for
// the lanes of run t.
struct GroupRuns {
  int runs;  // > kMaxRuns: gather
  __mmask16 mask[kMaxRuns];
  int32_t shift[kMaxRuns];
};

GroupRuns MakeGroupRuns(const int32_t* base, int64_t n) {
  // Lane t starts a run unless base[t] == base[t - 1] + 1 (lane 0 always).
  const __m512i b = _mm512_load_si512(base);
  const __m512i prev = _mm512_alignr_epi32(b, _mm512_set1_epi32(0), 15);
  uint32_t starts = (_mm512_cmpneq_epi32_mask(
                         b, _mm512_add_epi32(prev, _mm512_set1_epi32(1))) |
                     1u) &
                    ((1u << n) - 1u);
  GroupRuns g{__builtin_popcount(starts), {0, 0, 0, 0}, {0, 0, 0, 0}};
  if (g.runs > kMaxRuns) return g;
  for (int r = 0; r < g.runs; ++r) {
    const int s = __builtin_ctz(starts);
    starts &= starts - 1;
    const int e = starts != 0 ? __builtin_ctz(starts) : static_cast<int>(n);
    g.mask[r] = static_cast<__mmask16>(((1u << e) - 1u) & ~((1u << s) - 1u));
    g.shift[r] = base[s] - s;
  }
  return g;
}

// Loads the lanes `k` of 16 consecutive elements at p as floats, the other
// lanes from `src`: float32 as they are, bf16 widened (exact).
inline __m512 MaskLoad(__m512 src, __mmask16 k, const float* p) {
  return _mm512_mask_loadu_ps(src, k, p);
}
inline __m512 MaskLoad(__m512 src, __mmask16 k, const bfloat16* p) {
  const __m256i h = _mm256_maskz_loadu_epi16(k, p);
  return _mm512_mask_mov_ps(
      src, k,
      _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
}

// The lanes `k` of x[index[lane]], the other lanes zero.
inline __m512 MaskGather(__mmask16 k, const int32_t* index, const float* x) {
  return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k,
                                  _mm512_load_si512(index), x, 4);
}
inline __m512 MaskGather(__mmask16 k, const int32_t* index,
                         const bfloat16* x) {
  // No 16-bit gather: lane by lane (only strided convolutions of many short
  // runs get here).
  alignas(64) float v[kLanes];
  for (int t = 0; t < kLanes; ++t) {
    v[t] = (k >> t) & 1 ? static_cast<float>(x[index[t]]) : 0.0f;
  }
  return _mm512_load_ps(v);
}
#endif

}  // namespace

template <typename T>
void Im2ColBlock(const ConvGeometry& g, const T* __restrict x, int64_t r0,
                 int64_t rn, int64_t q0, int64_t qn, float* __restrict dst,
                 int64_t ld) {
  if (qn > kMaxBlock) {  // the tables below hold kMaxBlock columns
    for (int64_t q = 0; q < qn; q += kMaxBlock) {
      Im2ColBlock(g, x, r0, rn, q0 + q, std::min<int64_t>(kMaxBlock, qn - q),
                  dst + q, ld);
    }
    return;
  }
  // The tables hold 32-bit offsets from x.
  CHECK_LE(((q0 + qn - 1) / g.Ohw() + 1) * g.InPlane(),
           std::numeric_limits<int32_t>::max())
      << "im2col: images side by side exceed 2^31 floats";
  Columns col;
  PixelWalk px(g, q0);
  for (int64_t q = 0; q < qn; ++q, px.Next()) {
    col.ih[q] = px.Ih();
    col.iw[q] = px.Iw();
    col.base[q] = px.Base();
  }
  const int32_t h = static_cast<int32_t>(g.h), w = static_cast<int32_t>(g.w);
  TapWalk tap(g, r0);
#ifdef __AVX512F__
  // Compiled for AVX-512 builds; run unless DIVE_ISA asks for a lower path.
  if (ActiveIsa() >= Isa::kAvx512 && g.kh <= kMaxTap && g.kw <= kMaxTap) {
    // Per 16-column group: its lanes, its runs, and which lanes read the
    // image for each kernel row a (0 <= ih + a < h) and column b.
    constexpr int kGroups = kMaxBlock / kLanes;
    __mmask16 lanes[kGroups], in_a[kMaxTap][kGroups], in_b[kMaxTap][kGroups];
    GroupRuns runs[kGroups];
    const int64_t groups = (qn + kLanes - 1) / kLanes;
    int max_runs = 0;
    for (int64_t gi = 0; gi < groups; ++gi) {
      const int64_t q = gi * kLanes, n = std::min<int64_t>(kLanes, qn - q);
      lanes[gi] = static_cast<__mmask16>((1u << n) - 1u);
      runs[gi] = MakeGroupRuns(col.base + q, n);
      max_runs = std::max(max_runs, runs[gi].runs);
      const __m512i ih = _mm512_load_si512(col.ih + q);
      const __m512i iw = _mm512_load_si512(col.iw + q);
      // Unsigned compares: negative coordinates wrap to large values.
      for (int a = 0; a < g.kh; ++a) {
        in_a[a][gi] = _mm512_mask_cmplt_epu32_mask(
            lanes[gi], _mm512_add_epi32(ih, _mm512_set1_epi32(a)),
            _mm512_set1_epi32(h));
      }
      for (int b = 0; b < g.kw; ++b) {
        in_b[b][gi] = _mm512_cmplt_epu32_mask(
            _mm512_add_epi32(iw, _mm512_set1_epi32(b)), _mm512_set1_epi32(w));
      }
    }
    // Groups of several runs all do the same number of masked loads (runs
    // beyond a group's own have empty masks): no branch on each group's
    // pattern.
    const int loads = std::min(max_runs, kMaxRuns);
    for (int64_t r = 0; r < rn; ++r, tap.Next()) {
      const __mmask16* ma = in_a[tap.a];
      const __mmask16* mb = in_b[tap.b];
      const T* xo = x + tap.Off();
      float* out = dst + r * ld;
      for (int64_t gi = 0; gi < groups; ++gi) {
        const GroupRuns& gr = runs[gi];
        const __mmask16 inside = ma[gi] & mb[gi];
        __m512 val = _mm512_setzero_ps();
        if (gr.runs == 1) {  // "same" convolutions: runs span output rows
          val = MaskLoad(val, inside, xo + gr.shift[0]);
        } else if (gr.runs > kMaxRuns) {
          val = MaskGather(inside, col.base + gi * kLanes, xo);
        } else {
          for (int t = 0; t < loads; ++t) {
            val = MaskLoad(val, inside & gr.mask[t], xo + gr.shift[t]);
          }
        }
        _mm512_mask_storeu_ps(out + gi * kLanes, lanes[gi], val);
      }
    }
    return;
  }
#endif
  for (int64_t r = 0; r < rn; ++r, tap.Next()) {
    const auto a = static_cast<uint32_t>(tap.a),
               b = static_cast<uint32_t>(tap.b);
    for (int64_t q = 0; q < qn; ++q) {
      const bool inside =
          static_cast<uint32_t>(col.ih[q]) + a < static_cast<uint32_t>(h) &&
          static_cast<uint32_t>(col.iw[q]) + b < static_cast<uint32_t>(w);
      dst[r * ld + q] =
          inside ? static_cast<float>(x[col.base[q] + tap.Off()]) : 0.0f;
    }
  }
}

template <typename T>
void PlanesBlock(const T* base, int64_t stride, int64_t hw, int64_t r0,
                 int64_t rn, int64_t q0, int64_t qn, float* dst, int64_t ld) {
  for (int64_t r = 0; r < rn; ++r) {
    float* __restrict out = dst + r * ld;
    for (int64_t q = q0; q < q0 + qn;) {
      const int64_t image = q / hw, t = q % hw;
      const int64_t len = std::min(hw - t, q0 + qn - q);
      const T* __restrict src = base + image * stride + (r0 + r) * hw + t;
      if constexpr (std::is_same_v<T, bfloat16>) {
        Bf16ToFloat(src, out + q - q0, len);
      } else {
        for (int64_t u = 0; u < len; ++u) out[q - q0 + u] = src[u];
      }
      q += len;
    }
  }
}

template void Im2ColBlock(const ConvGeometry&, const float*, int64_t,
                          int64_t, int64_t, int64_t, float*, int64_t);
template void Im2ColBlock(const ConvGeometry&, const bfloat16*, int64_t,
                          int64_t, int64_t, int64_t, float*, int64_t);
template void PlanesBlock(const float*, int64_t, int64_t, int64_t, int64_t,
                          int64_t, int64_t, float*, int64_t);
template void PlanesBlock(const bfloat16*, int64_t, int64_t, int64_t, int64_t,
                          int64_t, int64_t, float*, int64_t);

void Col2Im(const ConvGeometry& g, const float* __restrict col,
            float* __restrict dx, int64_t ld) {
  const int64_t h = g.h, w = g.w, oh = g.oh, ow = g.ow, sh = g.sh, sw = g.sw;
  for (int64_t c = 0; c < g.c; ++c) {
    float* __restrict dxc = dx + c * h * w;
    for (int64_t a = 0; a < g.kh; ++a) {
      int64_t ilo, ihi;
      ValidRange(h, a - g.ph, sh, oh, &ilo, &ihi);
      for (int64_t b = 0; b < g.kw; ++b) {
        const float* __restrict row = col + ((c * g.kh + a) * g.kw + b) * ld;
        int64_t jlo, jhi;
        ValidRange(w, b - g.pw, sw, ow, &jlo, &jhi);
        const int64_t off = b - g.pw;
        for (int64_t i = ilo; i < ihi; ++i) {
          const float* __restrict r = row + i * ow;
          float* __restrict dr = dxc + (i * sh - g.ph + a) * w;
          if (sw == 1) {
            for (int64_t j = jlo; j < jhi; ++j) dr[j + off] += r[j];
          } else {
            for (int64_t j = jlo; j < jhi; ++j) dr[j * sw + off] += r[j];
          }
        }
      }
    }
  }
}

}  // namespace dive::conv_internal
