// AVX-VNNI micro-kernel of the int8 GEMM (see qgemm_kernels.h): VPDPBUSD in
// its VEX encoding on ymm registers, for CPUs with AVX-VNNI and without
// AVX-512 (or with AVX-512 turned down by DIVE_ISA). Compiled with -mavx2
// -mfma -mavxvnni; runs only where the CPU has AVX-VNNI.
//
// A 6 x 16 tile in 12 ymm accumulators: per four steps of k, two loads of R
// (16 columns x 4 bytes) and six broadcasts of an L quad, 12 VPDPBUSD.

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "tensor/qgemm_kernels.h"
#include "tensor/qgemm_kernels_avx2_store.h"

namespace dive::qgemm_internal {
namespace {

// R packed (r_offsets null), or read in place (quad row q at r +
// r_offsets[q]).
template <bool kLeftU8, bool kIndirect>
__attribute__((always_inline)) inline void Tile6x16(
    int64_t k_steps, const void* l_panel, const uint8_t* __restrict r,
    const int64_t* __restrict r_offsets, const QTileEpilogue& e, int mr,
    int nr) {
  const uint8_t* __restrict l = static_cast<const uint8_t*>(l_panel);
  __m256i acc[kMr][2];
#pragma GCC unroll 8
  for (int i = 0; i < kMr; ++i) {
    acc[i][0] = _mm256_setzero_si256();
    acc[i][1] = _mm256_setzero_si256();
  }
  for (int64_t q = 0; q < k_steps; ++q) {
    const __m256i* rq =
        reinterpret_cast<const __m256i*>(kIndirect ? r + r_offsets[q] : r);
    const __m256i b0 =
        kIndirect ? _mm256_loadu_si256(rq) : _mm256_load_si256(rq);
    const __m256i b1 =
        kIndirect ? _mm256_loadu_si256(rq + 1) : _mm256_load_si256(rq + 1);
#pragma GCC unroll 8
    for (int i = 0; i < kMr; ++i) {
      int32_t quad;
      std::memcpy(&quad, l + 4 * i, 4);
      const __m256i a = _mm256_set1_epi32(quad);
      if (kLeftU8) {
        acc[i][0] = _mm256_dpbusd_avx_epi32(acc[i][0], a, b0);
        acc[i][1] = _mm256_dpbusd_avx_epi32(acc[i][1], a, b1);
      } else {
        acc[i][0] = _mm256_dpbusd_avx_epi32(acc[i][0], b0, a);
        acc[i][1] = _mm256_dpbusd_avx_epi32(acc[i][1], b1, a);
      }
    }
    l += 4 * kMr;
    if (!kIndirect) r += 4 * kNr;
  }
  StoreTile6x16(acc, e, mr, nr);
}

template <bool kLeftU8>
void Kernel6x16(int64_t k_steps, const void* l, const void* r,
                const QTileEpilogue& e, int mr, int nr) {
  Tile6x16<kLeftU8, false>(k_steps, l, static_cast<const uint8_t*>(r), nullptr,
                           e, mr, nr);
}

void Kernel6x16Indirect(int64_t k_steps, const void* l, const uint8_t* r,
                        const int64_t* r_offsets, const QTileEpilogue& e,
                        int mr, int nr) {
  Tile6x16<false, true>(k_steps, l, r, r_offsets, e, mr, nr);
}

}  // namespace

QKernel AvxVnniQKernel() {
  QKernel kernel{kMr, kNr, 4, &Kernel6x16<true>, &Kernel6x16<false>};
  kernel.right_u8_indirect = &Kernel6x16Indirect;
  return kernel;
}

}  // namespace dive::qgemm_internal
