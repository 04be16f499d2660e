// AVX512-VNNI micro-kernel of the int8 GEMM (see qgemm_kernels.h). Compiled
// with AVX-512 F/BW/DQ/VL and -mavx512vnni; runs only where the CPU has
// them (tensor/qgemm.h's QGemmPathSupported).
//
// A 6 x 64 tile in 24 zmm accumulators: per four steps of k, four loads of
// the R panel (64 columns x 4 bytes) and six broadcasts of an L quad, then
// 24 VPDPBUSD (each 16 lanes x 4 u8 * s8 products summed into int32, exact:
// the driver bounds k so that no sum can wrap).

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "tensor/qgemm_kernels.h"
#include "tensor/qgemm_kernels_avx512_store.h"

namespace dive::qgemm_internal {
namespace {

constexpr int kMr = 6;
constexpr int kNv = 4;  // zmm vectors per row of the tile
constexpr int kNr = 16 * kNv;

__attribute__((always_inline)) inline __m512i BroadcastQuad(const uint8_t* p) {
  int32_t quad;
  std::memcpy(&quad, p, 4);
  return _mm512_set1_epi32(quad);
}

// R packed (r_offsets null), or read in place (quad row q at r +
// r_offsets[q]).
template <bool kLeftU8, bool kIndirect>
__attribute__((always_inline)) inline void Tile6x64(
    int64_t k_steps, const void* l_panel, const uint8_t* __restrict r,
    const int64_t* __restrict r_offsets, const QTileEpilogue& e, int mr,
    int nr) {
  const uint8_t* __restrict l = static_cast<const uint8_t*>(l_panel);
  __m512i acc[kMr][kNv];
#pragma GCC unroll 8
  for (int i = 0; i < kMr; ++i) {
#pragma GCC unroll 8
    for (int v = 0; v < kNv; ++v) acc[i][v] = _mm512_setzero_si512();
  }
  for (int64_t q = 0; q < k_steps; ++q) {
    __m512i b[kNv];
    const uint8_t* rq = kIndirect ? r + r_offsets[q] : r;
#pragma GCC unroll 8
    for (int v = 0; v < kNv; ++v) {
      b[v] = kIndirect ? _mm512_loadu_si512(rq + 64 * v)
                       : _mm512_load_si512(rq + 64 * v);
    }
#pragma GCC unroll 8
    for (int i = 0; i < kMr; ++i) {
      const __m512i a = BroadcastQuad(l + 4 * i);
#pragma GCC unroll 8
      for (int v = 0; v < kNv; ++v) {
        acc[i][v] = kLeftU8 ? _mm512_dpbusd_epi32(acc[i][v], a, b[v])
                            : _mm512_dpbusd_epi32(acc[i][v], b[v], a);
      }
    }
    l += 4 * kMr;
    if (!kIndirect) r += 4 * kNr;
  }
  __mmask16 mask[kNv];
#pragma GCC unroll 8
  for (int v = 0; v < kNv; ++v) mask[v] = LaneMask(nr, v);
    // Constant row indices: a runtime index into acc would keep it in memory.
#pragma GCC unroll 8
  for (int i = 0; i < kMr; ++i) {
    if (i < mr) {
#pragma GCC unroll 8
      for (int v = 0; v < kNv; ++v) {
        if (mask[v] != 0) StoreSums16(acc[i][v], e, i, 16 * v, mask[v]);
      }
    }
  }
}

template <bool kLeftU8>
void Kernel6x64(int64_t k_steps, const void* l, const void* r,
                const QTileEpilogue& e, int mr, int nr) {
  Tile6x64<kLeftU8, false>(k_steps, l, static_cast<const uint8_t*>(r), nullptr,
                           e, mr, nr);
}

void Kernel6x64Indirect(int64_t k_steps, const void* l, const uint8_t* r,
                        const int64_t* r_offsets, const QTileEpilogue& e,
                        int mr, int nr) {
  Tile6x64<false, true>(k_steps, l, r, r_offsets, e, mr, nr);
}

}  // namespace

QKernel Avx512VnniQKernel() {
  QKernel kernel{kMr, kNr, 4, &Kernel6x64<true>, &Kernel6x64<false>};
  kernel.right_u8_indirect = &Kernel6x64Indirect;
  return kernel;
}

}  // namespace dive::qgemm_internal
