// AVX2 micro-kernel of the int8 GEMM for CPUs without VNNI (see
// qgemm_kernels.h). Compiled with -mavx2 -mfma (and not -mavxvnni, so that
// no VPDPWSSD is generated); runs where the CPU has AVX2.
//
// Exact by construction: both operands are packed widened to int16 (pairs
// along k), and VPMADDWD sums two int16 products into an int32 lane, at most
// 2 * 255 * 128 in magnitude. (VPMADDUBSW, which takes the bytes as they
// are, saturates its int16 pair sums: 255 * 127 * 2 > 32767.) A 6 x 16 tile
// in 12 ymm accumulators: per two steps of k, two loads of R and six
// broadcasts of an L pair, 12 VPMADDWD and 12 VPADDD.

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "tensor/qgemm_kernels.h"
#include "tensor/qgemm_kernels_avx2_store.h"

namespace dive::qgemm_internal {
namespace {

void Kernel6x16(int64_t k_steps, const void* l_panel, const void* r_panel,
                const QTileEpilogue& e, int mr, int nr) {
  const uint8_t* __restrict l = static_cast<const uint8_t*>(l_panel);
  const __m256i* __restrict r = static_cast<const __m256i*>(r_panel);
  __m256i acc[kMr][2];
#pragma GCC unroll 8
  for (int i = 0; i < kMr; ++i) {
    acc[i][0] = _mm256_setzero_si256();
    acc[i][1] = _mm256_setzero_si256();
  }
  for (int64_t p = 0; p < k_steps; ++p) {
    const __m256i b0 = _mm256_load_si256(r);
    const __m256i b1 = _mm256_load_si256(r + 1);
#pragma GCC unroll 8
    for (int i = 0; i < kMr; ++i) {
      int32_t pair;
      std::memcpy(&pair, l + 4 * i, 4);
      const __m256i a = _mm256_set1_epi32(pair);
      acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(a, b0));
      acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(a, b1));
    }
    l += 4 * kMr;
    r += 2;
  }
  StoreTile6x16(acc, e, mr, nr);
}

}  // namespace

// The operands are int16 by now: the same kernel for either signedness.
QKernel Avx2QKernel() { return {kMr, kNr, 2, &Kernel6x16, &Kernel6x16}; }

}  // namespace dive::qgemm_internal
