// File: tensor/gemm_kernels_avx512_tile.h
// -----------------------------------------------------------------------------
//
// Internal to the AVX-512 kernel files (gemm_kernels_avx512.cc,
// gemm_kernels_avx512_bf16.cc): what their float32 and bf16 tiles share once
// the products are summed. Everything here has internal linkage, so each
// file compiles its own copy for its own instruction set (gemm_kernels.h
// says why that matters).

#ifndef TENSOR_GEMM_KERNELS_AVX512_TILE_H_
#define TENSOR_GEMM_KERNELS_AVX512_TILE_H_

#include <immintrin.h>

#include <cstdint>

#include "tensor/gemm_kernels.h"

namespace dive::gemm_internal {
namespace {

constexpr int kNv = 4;  // zmm vectors per row of a micro-kernel tile
constexpr int kNr = 16 * kNv;

// Sets every accumulator of a tile to zero.
template <int kRows, int kCols>
__attribute__((always_inline)) inline void ZeroTile(
    __m512 (&acc)[kRows][kCols]) {
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 8
    for (int j = 0; j < kCols; ++j) acc[i][j] = _mm512_setzero_ps();
  }
}

// C[mr, nr] = acc (+ C when `accumulate`), for mr <= kGemmMr, nr <= kNr;
// edge tiles are written through masks.
__attribute__((always_inline)) inline void StoreTile(const __m512 (&acc)[kGemmMr][kNv], float* c,
                      int64_t ldc, int mr, int nr, bool accumulate) {
  if (mr == kGemmMr && nr == kNr) {
#pragma GCC unroll 8
    for (int i = 0; i < kGemmMr; ++i) {
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
    const int rest = nr - 16 * v;
    const int left = rest < 0 ? 0 : rest > 16 ? 16 : rest;
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

// [sum(a0), sum(a1), sum(a2), sum(a3)].
__attribute__((always_inline)) inline __m128 Sum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  // Per 128-bit lane: [a0 0+2, a1 0+2, a0 1+3, a1 1+3], likewise for a2, a3.
  const __m512 t0 =
      _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
  const __m512 t1 =
      _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
  // Per 128-bit lane: [a0, a1, a2, a3] partial sums.
  const __m512d d0 = _mm512_castps_pd(t0), d1 = _mm512_castps_pd(t1);
  const __m512 u = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(d0, d1)),
                                 _mm512_castpd_ps(_mm512_unpackhi_pd(d0, d1)));
  const __m256 v = _mm256_add_ps(
      _mm512_castps512_ps256(u),
      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
  return _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
}

// GemmNT's tile: C[i, j] += the sum of acc[i][j]'s lanes, i < mr, j < nr.
__attribute__((always_inline)) inline void StoreNtTile(const __m512 (&acc)[kNtM][kNtRows], float* c,
                        int64_t ldc, int mr, int nr) {
  // Constant indices only: a runtime row index into acc would keep it in
  // memory instead of registers.
  __m128 sum[kNtM];
#pragma GCC unroll 8
  for (int i = 0; i < kNtM; ++i) {
    sum[i] = Sum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
  }
  const auto cols = static_cast<__mmask8>((1u << nr) - 1u);
  for (int i = 0; i < mr; ++i) {
    float* out = c + i * ldc;
    _mm_mask_storeu_ps(out, cols,
                       _mm_add_ps(sum[i], _mm_maskz_loadu_ps(cols, out)));
  }
}

}  // namespace
}  // namespace dive::gemm_internal

#endif  // TENSOR_GEMM_KERNELS_AVX512_TILE_H_
