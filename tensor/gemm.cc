#include "tensor/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "Eigen/Core"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace dive {
namespace {

// Scales the m x n matrix C by beta (beta == 0 writes zeros, so NaN garbage
// in C is ignored as BLAS requires).
void ScaleC(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  if (beta == 1.0f) return;
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (beta == 0.0f) {
      std::fill(row, row + n, 0.0f);
    } else {
      for (int64_t j = 0; j < n; ++j) row[j] *= beta;
    }
  }
}

#ifdef __AVX512F__

// -----------------------------------------------------------------------------
// Packed GEMM with an AVX-512 micro-kernel (the BLIS structure, row-major).
//
// C is cut into kMr x kNr tiles. The micro-kernel keeps one tile in 24 zmm
// registers and, for every p of the shared dimension, broadcasts kMr values of
// A and loads kNr / 16 vectors of B: 24 FMAs per 10 loads. A and B are first
// copied ("packed") into the order the kernel reads them, zero-padded to whole
// tiles, with alpha folded into A:
//
//   packed A: [m / kMr panels][kc][kMr]     packed B: [n / kNr panels][kc][kNr]
//
// Blocking: a kKc x kNc block of B (L2-sized) is packed once and reused by
// every kMr-row panel of A; one A panel (kMr x kKc, 6 KiB) stays in L1 while
// the kernel sweeps the B panels.
// -----------------------------------------------------------------------------

constexpr int kMr = 6;
constexpr int kNv = 4;  // zmm vectors per tile row
constexpr int kNr = 16 * kNv;
constexpr int64_t kKc = 256;
constexpr int64_t kMc = 16 * kMr;
constexpr int64_t kNc = 8 * kNr;

// C[mr, nr] = A-panel * B-panel (+ C when `accumulate`), for mr <= kMr and
// nr <= kNr (edge tiles are written through masks).
void MicroKernel(int64_t kc, const float* __restrict a,
                 const float* __restrict b, float* __restrict c, int64_t ldc,
                 int mr, int nr, bool accumulate) {
  __m512 acc[kMr][kNv];
#pragma GCC unroll 8
  for (int i = 0; i < kMr; ++i) {
#pragma GCC unroll 8
    for (int v = 0; v < kNv; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < kc; ++p) {
    __m512 bv[kNv];
#pragma GCC unroll 8
    for (int v = 0; v < kNv; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 8
    for (int i = 0; i < kMr; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 8
      for (int v = 0; v < kNv; ++v) {
        acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
      }
    }
    a += kMr;
    b += kNr;
  }
  if (mr == kMr && nr == kNr) {
#pragma GCC unroll 8
    for (int i = 0; i < kMr; ++i) {
      float* row = c + i * ldc;
#pragma GCC unroll 8
      for (int v = 0; v < kNv; ++v) {
        __m512 x = acc[i][v];
        if (accumulate) x = _mm512_add_ps(x, _mm512_loadu_ps(row + 16 * v));
        _mm512_storeu_ps(row + 16 * v, x);
      }
    }
    return;
  }
  __mmask16 mask[kNv];
  for (int v = 0; v < kNv; ++v) {
    const int left = std::clamp(nr - 16 * v, 0, 16);
    mask[v] = static_cast<__mmask16>((1u << left) - 1u);
  }
  for (int i = 0; i < mr; ++i) {
    float* row = c + i * ldc;
    for (int v = 0; v < kNv; ++v) {
      __m512 x = acc[i][v];
      if (accumulate) {
        x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], row + 16 * v));
      }
      _mm512_mask_storeu_ps(row + 16 * v, mask[v], x);
    }
  }
}

// Packs alpha * op(A)[i0 : i0 + mc, p0 : p0 + kc] into kMr-row panels.
void PackA(bool trans, const float* a, int64_t lda, int64_t i0, int64_t p0,
           int64_t mc, int64_t kc, float alpha, float* __restrict out) {
  for (int64_t ip = 0; ip < mc; ip += kMr) {
    const int rows = static_cast<int>(std::min<int64_t>(kMr, mc - ip));
    for (int64_t p = 0; p < kc; ++p) {
      float* dst = out + p * kMr;
      for (int i = 0; i < rows; ++i) {
        const int64_t r = i0 + ip + i, col = p0 + p;
        dst[i] = alpha * (trans ? a[col * lda + r] : a[r * lda + col]);
      }
      for (int i = rows; i < kMr; ++i) dst[i] = 0.0f;
    }
    out += kc * kMr;
  }
}

// Packs op(B)[p0 : p0 + kc, j0 : j0 + nc] into kNr-column panels.
void PackB(bool trans, const float* b, int64_t ldb, int64_t p0, int64_t j0,
           int64_t kc, int64_t nc, float* __restrict out) {
  for (int64_t jp = 0; jp < nc; jp += kNr) {
    const int64_t cols = std::min<int64_t>(kNr, nc - jp);
    if (!trans) {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = b + (p0 + p) * ldb + j0 + jp;
        float* dst = out + p * kNr;
        std::copy(src, src + cols, dst);
        std::fill(dst + cols, dst + kNr, 0.0f);
      }
    } else {
      for (int64_t j = 0; j < cols; ++j) {
        const float* src = b + (j0 + jp + j) * ldb + p0;
        for (int64_t p = 0; p < kc; ++p) out[p * kNr + j] = src[p];
      }
      for (int64_t p = 0; p < kc; ++p) {
        std::fill(out + p * kNr + cols, out + (p + 1) * kNr, 0.0f);
      }
    }
    out += kc * kNr;
  }
}

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};

// A per-thread packing buffer that only grows: the steady state of a training
// loop allocates nothing here.
float* ThreadBuffer(int which, int64_t floats) {
  thread_local std::unique_ptr<float, AlignedFree> buf[2];
  thread_local int64_t size[2] = {0, 0};
  if (size[which] < floats) {
    const size_t bytes = static_cast<size_t>(floats) * sizeof(float);
    buf[which].reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    size[which] = floats;
  }
  return buf[which].get();
}

// One thread's GEMM on C[m, n] (already scaled by beta, so the kernel always
// accumulates after the first block of p when beta == 0).
void PackedGemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                float alpha, const float* a, int64_t lda, const float* b,
                int64_t ldb, bool overwrite, float* c, int64_t ldc) {
  const int64_t mc_max = std::min<int64_t>(kMc, (m + kMr - 1) / kMr * kMr);
  const int64_t nc_max = std::min<int64_t>(kNc, (n + kNr - 1) / kNr * kNr);
  const int64_t kc_max = std::min<int64_t>(kKc, k);
  float* pa = ThreadBuffer(0, mc_max * kc_max);
  float* pb = ThreadBuffer(1, nc_max * kc_max);
  for (int64_t j0 = 0; j0 < n; j0 += kNc) {
    const int64_t nc = std::min(kNc, n - j0);
    for (int64_t p0 = 0; p0 < k; p0 += kKc) {
      const int64_t kc = std::min(kKc, k - p0);
      const bool accumulate = !(overwrite && p0 == 0);
      PackB(trans_b, b, ldb, p0, j0, kc, nc, pb);
      for (int64_t i0 = 0; i0 < m; i0 += kMc) {
        const int64_t mc = std::min(kMc, m - i0);
        PackA(trans_a, a, lda, i0, p0, mc, kc, alpha, pa);
        for (int64_t ir = 0; ir < mc; ir += kMr) {
          const int mr = static_cast<int>(std::min<int64_t>(kMr, mc - ir));
          for (int64_t jr = 0; jr < nc; jr += kNr) {
            const int nr = static_cast<int>(std::min<int64_t>(kNr, nc - jr));
            MicroKernel(kc, pa + ir * kc, pb + jr * kc,
                        c + (i0 + ir) * ldc + j0 + jr, ldc, mr, nr, accumulate);
          }
        }
      }
    }
  }
}

// Below this many multiply-adds a second thread costs more than it saves.
constexpr int64_t kMinParallelMacs = 1 << 20;

void PackedGemmParallel(bool trans_a, bool trans_b, int64_t m, int64_t n,
                        int64_t k, float alpha, const float* a, int64_t lda,
                        const float* b, int64_t ldb, float beta, float* c,
                        int64_t ldc) {
  const bool overwrite = beta == 0.0f;
  if (!overwrite) ScaleC(m, n, beta, c, ldc);
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (m * n * k < kMinParallelMacs) threads = 1;
  if (threads == 1) {
    PackedGemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, overwrite, c,
               ldc);
    return;
  }
  // Each thread computes a slab of C: columns when C is wide, else rows,
  // in whole tiles.
  const bool split_n = n >= m;
  const int64_t unit = split_n ? kNr : kMr;
  const int64_t extent = split_n ? n : m;
  const int64_t tiles = (extent + unit - 1) / unit;
  threads = static_cast<int>(std::min<int64_t>(threads, tiles));
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int64_t lo = std::min(extent, tiles * t / threads * unit);
    const int64_t hi = std::min(extent, tiles * (t + 1) / threads * unit);
    if (hi > lo) {
      if (split_n) {
        PackedGemm(trans_a, trans_b, m, hi - lo, k, alpha, a, lda,
                   trans_b ? b + lo * ldb : b + lo, ldb, overwrite, c + lo,
                   ldc);
      } else {
        PackedGemm(trans_a, trans_b, hi - lo, n, k, alpha,
                   trans_a ? a + lo : a + lo * lda, lda, b, ldb, overwrite,
                   c + lo * ldc, ldc);
      }
    }
  }
}

#else  // !__AVX512F__: Eigen's GEMM on mapped buffers.

using RowMajor =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap =
    Eigen::Map<const RowMajor, Eigen::Unaligned, Eigen::OuterStride<>>;
using Map = Eigen::Map<RowMajor, Eigen::Unaligned, Eigen::OuterStride<>>;

template <typename A, typename B>
void Accumulate(const A& op_a, const B& op_b, float alpha, float beta, Map& c) {
  if (beta == 0.0f) {
    c.noalias() = alpha * (op_a * op_b);
  } else {
    if (beta != 1.0f) c *= beta;
    c.noalias() += alpha * (op_a * op_b);
  }
}

void EigenGemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
               float alpha, const float* a, int64_t lda, const float* b,
               int64_t ldb, float beta, float* c, int64_t ldc) {
  Map cm(c, m, n, Eigen::OuterStride<>(ldc));
  // A stored as [m, k] (or [k, m] when transposed); likewise B.
  ConstMap am(a, trans_a ? k : m, trans_a ? m : k, Eigen::OuterStride<>(lda));
  ConstMap bm(b, trans_b ? n : k, trans_b ? k : n, Eigen::OuterStride<>(ldb));
  if (!trans_a && !trans_b) Accumulate(am, bm, alpha, beta, cm);
  if (!trans_a && trans_b) Accumulate(am, bm.transpose(), alpha, beta, cm);
  if (trans_a && !trans_b) Accumulate(am.transpose(), bm, alpha, beta, cm);
  if (trans_a && trans_b) {
    Accumulate(am.transpose(), bm.transpose(), alpha, beta, cm);
  }
}

#endif  // __AVX512F__

}  // namespace

void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
          float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == 0.0f) {
    ScaleC(m, n, beta, c, ldc);
    return;
  }
#ifdef __AVX512F__
  PackedGemmParallel(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c,
                     ldc);
#else
  EigenGemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

}  // namespace dive
