// AVX512-BF16 kernels of the GEMM (see gemm_kernels.h): the 6 x 64 bf16
// micro-kernel and GemmNT's bf16 dot-product tile, both on VDPBF16PS (16
// lanes, each adding the products of one pair of bf16 values to a float32
// sum: twice the multiply-adds of an FMA per instruction), and the float32
// to bf16 conversions that feed them (VCVTNE2PS2BF16, round to nearest
// even). Compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl
// -mavx512bf16; run only where ActiveIsa() >= Isa::kAvx512Bf16.

#include <immintrin.h>

#include <cstdint>

#include "tensor/gemm_kernels.h"
#include "tensor/gemm_kernels_avx512_tile.h"

namespace dive::gemm_internal {
namespace {

// 32 bf16 (as 16-bit integers) from the floats lo[0:16] and hi[0:16],
// interleaved: [lo0, hi0, lo1, hi1, ...].
inline __m512i PairUp(__m512 lo, __m512 hi) {
  const __m512i both = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
  const __m512i order = _mm512_set_epi16(
      31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,  //
      23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(order, both);
}

// 32-bit broadcast of the bf16 pair at p.
inline __m512bh Pair(const uint16_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, sizeof(v));
  return reinterpret_cast<__m512bh>(_mm512_set1_epi32(v));
}

inline __m512bh LoadBh(const uint16_t* p) {
  return reinterpret_cast<__m512bh>(_mm512_load_si512(p));
}

// C[mr, nr] = A-pairs * B-pairs (+ C when `accumulate`), for mr <= kGemmMr
// and nr <= kNr; kc (even) along k.
void Kernel6x64(int64_t kc, const uint16_t* __restrict a,
                const uint16_t* __restrict b, float* __restrict c, int64_t ldc,
                int mr, int nr, bool accumulate) {
  const int64_t kc2 = kc / 2;
  __m512 acc[kGemmMr][kNv];
  ZeroTile(acc);
  for (int64_t p = 0; p < kc2; ++p) {
    __m512bh bv[kNv];
#pragma GCC unroll 8
    for (int v = 0; v < kNv; ++v) bv[v] = LoadBh(b + 32 * v);
#pragma GCC unroll 8
    for (int i = 0; i < kGemmMr; ++i) {
      const __m512bh ai = Pair(a + 2 * i);
#pragma GCC unroll 8
      for (int v = 0; v < kNv; ++v) {
        acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, bv[v]);
      }
    }
    a += 2 * kGemmMr;
    b += 2 * kNr;
  }
  StoreTile(acc, c, ldc, mr, nr, accumulate);
}

}  // namespace

Bf16MicroKernel Avx512Bf16MicroKernel() {
  return {kGemmMr, kNr, 2, &Kernel6x64};
}

void Avx512Bf16PackPairs(const float* src, int64_t kc, int64_t nr,
                         uint16_t* dst) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; p += 2) {
    const float* lo = src + p * nr;
    const float* hi = lo + nr;
    uint16_t* out = dst + p * nr;  // pair p / 2 starts at (p / 2) * 2 * nr
    for (int64_t j = 0; j < nr; j += 16) {
      const int64_t n = nr - j < 16 ? nr - j : 16;
      const auto mask = static_cast<__mmask16>((1u << n) - 1u);
      const __m512 l = _mm512_maskz_loadu_ps(mask, lo + j);
      const __m512 h = p + 1 < kc ? _mm512_maskz_loadu_ps(mask, hi + j) : zero;
      _mm512_mask_storeu_epi16(
          out + 2 * j, static_cast<__mmask32>((uint64_t{1} << (2 * n)) - 1u),
          PairUp(l, h));
    }
  }
}

void Avx512Bf16Convert(const float* src, int64_t n, int64_t n_pad,
                       uint16_t* dst) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16),
                                           _mm512_loadu_ps(src + i));
    _mm512_storeu_si512(dst + i, reinterpret_cast<__m512i>(v));
  }
  for (; i < n; i += 16) {
    const int64_t left = n - i < 16 ? n - i : 16;
    const auto mask = static_cast<__mmask16>((1u << left) - 1u);
    const __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, src + i));
    _mm256_mask_storeu_epi16(dst + i, mask, reinterpret_cast<__m256i>(v));
  }
  for (i = n; i < n_pad; ++i) dst[i] = 0;
}

void Avx512Bf16NtKernel(int64_t kp, const uint16_t* a, int64_t lda,
                        const uint16_t* b, int64_t ldb, float* c, int64_t ldc,
                        int mr, int nr) {
  const uint16_t* row[kNtM];
  for (int i = 0; i < kNtM; ++i) row[i] = a + (i < mr ? i : mr - 1) * lda;
  __m512 acc[kNtM][kNtRows];
  ZeroTile(acc);
  for (int64_t p = 0; p < kp; p += 32) {
    __m512bh bv[kNtRows];
#pragma GCC unroll 8
    for (int j = 0; j < kNtRows; ++j) bv[j] = LoadBh(b + j * ldb + p);
#pragma GCC unroll 8
    for (int i = 0; i < kNtM; ++i) {
      const __m512bh av =
          reinterpret_cast<__m512bh>(_mm512_loadu_si512(row[i] + p));
#pragma GCC unroll 8
      for (int j = 0; j < kNtRows; ++j) {
        acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
      }
    }
  }
  StoreNtTile(acc, c, ldc, mr, nr);
}

}  // namespace dive::gemm_internal
