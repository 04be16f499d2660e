// AMX-INT8 micro-kernel of the int8 GEMM (see qgemm_kernels.h): a 32 x 32
// tile of int32 sums in four 16 x 16 tile registers, fed per 64 steps of k
// by two 16-row tiles of L and two 16-column tiles of R, each TDPBUSD (L
// uint8, R int8) or TDPBSUD (L int8, R uint8) a 16 x 16 x 64 product summed
// in int32. The tile setup and the tile instructions (real or emulated) are
// the AMX bf16 kernel's, from tensor/amx_tiles.h: palette 1, every tile 16
// rows of 64 bytes. The sums are stored to a 32 x 32 buffer (L1) and
// requantized from there with the AVX-512 store.
//
// Compiled with -mamx-tile -mamx-int8 and AVX-512 F/BW/DQ/VL; run only where
// the CPU has AMX-INT8 and Linux has granted the tile data (DetectedCpu's
// amx_int8). NOT YET RUN ON AMX HARDWARE: the tile instructions are tested
// only emulated in C++ (built with DIVE_AMX_EMULATE: the testonly
// //tensor:qgemm_kernels_amx_emulated, AmxEmulatedQKernel), which checks the
// layouts and edges, not the instructions; for that reason the AMX path is
// never chosen by default (DefaultQGemmPath), only when asked for, and only
// after this kernel has passed a self-check against the generic path in
// the process (QGemmPathSupported).
//
// Tile registers:
//   tmm0 C[0:16, 0:16]   tmm1 C[0:16, 16:32]
//   tmm2 C[16:32, 0:16]  tmm3 C[16:32, 16:32]
//   tmm4 L[0:16, k]      tmm5 L[16:32, k]      (64 bytes of k per row)
//   tmm6 R[k, 0:16]      tmm7 R[k, 16:32]      (16 quads per row)

#include <immintrin.h>

#include <cstdint>

#include "tensor/amx_tiles.h"
#include "tensor/qgemm_kernels.h"
#include "tensor/qgemm_kernels_avx512_store.h"

namespace dive::qgemm_internal {
namespace {

using amx_internal::kTileBytes;
using amx_internal::kTileRows;
constexpr int kMr = 2 * kTileRows;
constexpr int kNr = 2 * kTileRows;
constexpr int kKUnit = 64;

template <bool kLeftU8>
void Kernel32x32(int64_t k_steps, const void* l_panel, const void* r_panel,
                 const QTileEpilogue& e, int mr, int nr) {
  const uint8_t* l = static_cast<const uint8_t*>(l_panel);
  const uint8_t* r = static_cast<const uint8_t*>(r_panel);
  const int64_t l_stride = k_steps * kKUnit;  // bytes per row of L
  const int64_t r_stride = kNr * 4;           // bytes per quad row of R
  DIVE_TILE_ZERO(0);
  DIVE_TILE_ZERO(1);
  DIVE_TILE_ZERO(2);
  DIVE_TILE_ZERO(3);
  for (int64_t s = 0; s < k_steps; ++s) {
    const int64_t p = s * kKUnit;
    DIVE_TILE_LOAD(4, l + p, l_stride);
    DIVE_TILE_LOAD(5, l + kTileRows * l_stride + p, l_stride);
    const uint8_t* rp = r + p * kNr;  // quad row p / 4
    DIVE_TILE_LOAD(6, rp, r_stride);
    DIVE_TILE_LOAD(7, rp + kTileBytes, r_stride);
    if (kLeftU8) {
      DIVE_TILE_DPBUSD(0, 4, 6);
      DIVE_TILE_DPBUSD(1, 4, 7);
      DIVE_TILE_DPBUSD(2, 5, 6);
      DIVE_TILE_DPBUSD(3, 5, 7);
    } else {
      DIVE_TILE_DPBSUD(0, 4, 6);
      DIVE_TILE_DPBSUD(1, 4, 7);
      DIVE_TILE_DPBSUD(2, 5, 6);
      DIVE_TILE_DPBSUD(3, 5, 7);
    }
  }
  alignas(64) int32_t sums[kMr][kNr];
  constexpr int64_t kStride = kNr * 4;
  DIVE_TILE_STORE(0, &sums[0][0], kStride);
  DIVE_TILE_STORE(1, &sums[0][16], kStride);
  DIVE_TILE_STORE(2, &sums[16][0], kStride);
  DIVE_TILE_STORE(3, &sums[16][16], kStride);
  const __mmask16 mask0 = LaneMask(nr, 0), mask1 = LaneMask(nr, 1);
  for (int i = 0; i < mr; ++i) {
    StoreSums16(_mm512_load_si512(sums[i]), e, i, 0, mask0);
    if (mask1 != 0)
      StoreSums16(_mm512_load_si512(sums[i] + 16), e, i, 16, mask1);
  }
}

void Configure() { amx_internal::ConfigureTiles(); }

void Release() { amx_internal::ReleaseTiles(); }

}  // namespace

#ifdef DIVE_AMX_EMULATE
QKernel AmxEmulatedQKernel() {
  return {kMr,        kNr,     kKUnit, &Kernel32x32<true>, &Kernel32x32<false>,
          &Configure, &Release};
}
#else
QKernel AmxQKernel() {
  return {kMr,        kNr,     kKUnit, &Kernel32x32<true>, &Kernel32x32<false>,
          &Configure, &Release};
}
#endif

}  // namespace dive::qgemm_internal
