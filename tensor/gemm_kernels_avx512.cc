// AVX-512 kernels of the GEMM (see gemm_kernels.h): the 6 x 64 micro-kernel,
// GemmNT's dot-product tile and the 16 x 16 register transpose. Compiled with
// -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma; run only where
// ActiveIsa() >= Isa::kAvx512.

#include <immintrin.h>

#include <cstdint>

#include "tensor/gemm_kernels.h"
#include "tensor/gemm_kernels_avx512_tile.h"

namespace dive::gemm_internal {
namespace {

// C[mr, nr] = A-panel * B-panel (+ C when `accumulate`), for mr <= kGemmMr and
// nr <= kNr (edge tiles are written through masks).
void Kernel6x64(int64_t kc, const float* __restrict a,
                const float* __restrict b, float* __restrict c, int64_t ldc,
                int mr, int nr, bool accumulate) {
  __m512 acc[kGemmMr][kNv];
  ZeroTile(acc);
  for (int64_t p = 0; p < kc; ++p) {
    __m512 bv[kNv];
#pragma GCC unroll 8
    for (int v = 0; v < kNv; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 8
    for (int i = 0; i < kGemmMr; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 8
      for (int v = 0; v < kNv; ++v) {
        acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
      }
    }
    a += kGemmMr;
    b += kNr;
  }
  StoreTile(acc, c, ldc, mr, nr, accumulate);
}

}  // namespace

MicroKernel Avx512MicroKernel() { return {kGemmMr, kNr, &Kernel6x64}; }

void Avx512Transpose16x16(const float* src, int64_t lds, float* dst,
                          int64_t ld) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
  // 32-bit, then 64-bit interleaves within 128-bit lanes, then two rounds of
  // 128-bit lane shuffles: r[i] ends up holding column i.
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]);
    const __m512d b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]);
    const __m512d d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int h = 0; h < 16; h += 8) {
    for (int i = 0; i < 4; ++i) {
      t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
    }
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * ld, r[i]);
}

void Avx512NtKernel(int64_t kp, const float* a, int64_t lda, const float* b,
                    int64_t ldb, float* c, int64_t ldc, int mr, int nr) {
  const float* row[kNtM];
  for (int i = 0; i < kNtM; ++i) row[i] = a + (i < mr ? i : mr - 1) * lda;
  __m512 acc[kNtM][kNtRows];
  ZeroTile(acc);
  for (int64_t p = 0; p < kp; p += 16) {
    const __mmask16 mask = kp - p >= 16
                               ? __mmask16{0xFFFF}
                               : static_cast<__mmask16>((1u << (kp - p)) - 1u);
    __m512 bv[kNtRows];
#pragma GCC unroll 8
    for (int j = 0; j < kNtRows; ++j) bv[j] = _mm512_load_ps(b + j * ldb + p);
#pragma GCC unroll 8
    for (int i = 0; i < kNtM; ++i) {
      const __m512 av = _mm512_maskz_loadu_ps(mask, row[i] + p);
#pragma GCC unroll 8
      for (int j = 0; j < kNtRows; ++j) {
        acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
      }
    }
  }
  StoreNtTile(acc, c, ldc, mr, nr);
}

}  // namespace dive::gemm_internal
