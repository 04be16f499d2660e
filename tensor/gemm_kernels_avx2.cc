// AVX2 + FMA micro-kernel of the packed GEMM (see gemm_kernels.h). Compiled
// with -mavx2 -mfma; runs only where ActiveIsa() >= Isa::kAvx2.

#include <immintrin.h>

#include <cstdint>

#include "tensor/gemm_kernels.h"

namespace dive::gemm_internal {
namespace {

constexpr int kNr = 16;  // two ymm vectors per row of the tile

// The 6 x 16 tile of the BLIS Haswell kernel: 12 accumulators, two loads of
// B and six broadcasts of A per step of k (12 FMAs per 8 loads).
void Kernel6x16(int64_t kc, const float* __restrict a,
                const float* __restrict b, float* __restrict c, int64_t ldc,
                int mr, int nr, bool accumulate) {
  __m256 acc[kGemmMr][2];
#pragma GCC unroll 8
  for (int i = 0; i < kGemmMr; ++i) {
    acc[i][0] = _mm256_setzero_ps();
    acc[i][1] = _mm256_setzero_ps();
  }
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(b);
    const __m256 b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 8
    for (int i = 0; i < kGemmMr; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += kGemmMr;
    b += kNr;
  }
  if (mr == kGemmMr && nr == kNr) {
#pragma GCC unroll 8
    for (int i = 0; i < kGemmMr; ++i) {
      float* row = c + i * ldc;
      __m256 x0 = acc[i][0], x1 = acc[i][1];
      if (accumulate) {
        x0 = _mm256_add_ps(x0, _mm256_loadu_ps(row));
        x1 = _mm256_add_ps(x1, _mm256_loadu_ps(row + 8));
      }
      _mm256_storeu_ps(row, x0);
      _mm256_storeu_ps(row + 8, x1);
    }
    return;
  }
  // Edge tile: through a buffer, element by element.
  alignas(32) float tile[kGemmMr][kNr];
#pragma GCC unroll 8
  for (int i = 0; i < kGemmMr; ++i) {
    _mm256_store_ps(tile[i], acc[i][0]);
    _mm256_store_ps(tile[i] + 8, acc[i][1]);
  }
  for (int i = 0; i < mr; ++i) {
    float* row = c + i * ldc;
    for (int j = 0; j < nr; ++j) {
      row[j] = accumulate ? row[j] + tile[i][j] : tile[i][j];
    }
  }
}

}  // namespace

MicroKernel Avx2MicroKernel() { return {kGemmMr, kNr, &Kernel6x16}; }

}  // namespace dive::gemm_internal
