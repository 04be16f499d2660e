// AMX kernel of the GEMM (see gemm_kernels.h): a 32 x 32 tile of C in four
// 16 x 16 float32 tile registers, fed by two 16-row tiles of A and two
// 16-column tiles of B per 32 steps along k, each TDPBF16PS a 16 x 16 x 32
// bf16 product summed in float32 (the work of 256 VDPBF16PS). Compiled with
// -mamx-tile -mamx-bf16 -mavx512f -mavx512bw; run only where
// ActiveIsa() >= Isa::kAmx, which tensor/cpu.cc grants after the kernel has
// given this process the tile data (arch_prctl), and after tensor/gemm.cc's
// self-check of this kernel has passed (AmxSelfCheck in gemm.h).
//
// Tile registers (palette 1, every tile 16 rows of 64 bytes):
//   tmm0 C[0:16, 0:16]   tmm1 C[0:16, 16:32]
//   tmm2 C[16:32, 0:16]  tmm3 C[16:32, 16:32]
//   tmm4 A[0:16, k]      tmm5 A[16:32, k]        (32 bf16 per row)
//   tmm6 B[k, 0:16]      tmm7 B[k, 16:32]        (16 pairs per row)
//
// Built with DIVE_AMX_EMULATE (the testonly :gemm_kernels_amx_emulated) the
// tile instructions are computed in C++ instead (tensor/amx_tiles.h, shared
// with the int8 AMX kernel), and the kernel is AmxEmulatedMicroKernel, which
// the GEMM's AMX path takes where it is linked: so the layouts, the edges and
// the GEMM's use of this kernel are tested on CPUs without AMX; the
// instructions themselves run only on CPUs that have them.

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "tensor/amx_tiles.h"
#include "tensor/gemm_kernels.h"

namespace dive::gemm_internal {
namespace {

using amx_internal::kTileRows;
constexpr int kMr = 2 * kTileRows;
constexpr int kNr = 2 * kTileRows;

// The four C tiles from c (row stride ldc floats), or zero.
inline void LoadC(const float* c, int64_t ldc, bool accumulate) {
  if (!accumulate) {
    DIVE_TILE_ZERO(0);
    DIVE_TILE_ZERO(1);
    DIVE_TILE_ZERO(2);
    DIVE_TILE_ZERO(3);
    return;
  }
  const int64_t stride = ldc * 4;
  DIVE_TILE_LOAD(0, c, stride);
  DIVE_TILE_LOAD(1, c + 16, stride);
  DIVE_TILE_LOAD(2, c + 16 * ldc, stride);
  DIVE_TILE_LOAD(3, c + 16 * ldc + 16, stride);
}

inline void StoreC(float* c, int64_t ldc) {
  const int64_t stride = ldc * 4;
  DIVE_TILE_STORE(0, c, stride);
  DIVE_TILE_STORE(1, c + 16, stride);
  DIVE_TILE_STORE(2, c + 16 * ldc, stride);
  DIVE_TILE_STORE(3, c + 16 * ldc + 16, stride);
}

// dst[i * ldd + j] = src[i * lds + j] for i < rows, j < cols (masked rows of
// up to 32 floats).
void CopyBlock(const float* src, int64_t lds, float* dst, int64_t ldd, int rows,
               int cols) {
  const __mmask16 lo = static_cast<__mmask16>((1u << (cols < 16 ? cols : 16)) - 1u);
  const __mmask16 hi =
      static_cast<__mmask16>((1u << (cols > 16 ? cols - 16 : 0)) - 1u);
  for (int i = 0; i < rows; ++i) {
    _mm512_mask_storeu_ps(dst + i * ldd, lo,
                          _mm512_maskz_loadu_ps(lo, src + i * lds));
    _mm512_mask_storeu_ps(dst + i * ldd + 16, hi,
                          _mm512_maskz_loadu_ps(hi, src + i * lds + 16));
  }
}

// C[mr, nr] = A-rows * B-pairs (+ C when `accumulate`), kc (a multiple of
// 32) along k; edge tiles go through a 32 x 32 buffer.
void Kernel32x32(int64_t kc, const uint16_t* __restrict a,
                 const uint16_t* __restrict b, float* __restrict c, int64_t ldc,
                 int mr, int nr, bool accumulate) {
  const bool full = mr == kMr && nr == kNr;
  alignas(64) float edge[kMr * kNr];
  if (full) {
    LoadC(c, ldc, accumulate);
  } else {
    if (accumulate) {
      std::memset(edge, 0, sizeof(edge));
      CopyBlock(c, ldc, edge, kNr, mr, nr);
    }
    LoadC(edge, kNr, accumulate);
  }
  const int64_t a_stride = kc * 2;   // bytes per row of A
  const int64_t b_stride = kNr * 4;  // bytes per pair row of B
  for (int64_t p = 0; p < kc; p += 32) {
    DIVE_TILE_LOAD(4, a + p, a_stride);
    DIVE_TILE_LOAD(5, a + 16 * kc + p, a_stride);
    const uint16_t* bp = b + p * kNr;  // pair row p / 2
    DIVE_TILE_LOAD(6, bp, b_stride);
    DIVE_TILE_LOAD(7, bp + 32, b_stride);
    DIVE_TILE_DPBF16(0, 4, 6);
    DIVE_TILE_DPBF16(1, 4, 7);
    DIVE_TILE_DPBF16(2, 5, 6);
    DIVE_TILE_DPBF16(3, 5, 7);
  }
  if (full) {
    StoreC(c, ldc);
  } else {
    StoreC(edge, kNr);
    CopyBlock(edge, kNr, c, ldc, mr, nr);
  }
}

void Configure() { amx_internal::ConfigureTiles(); }

void Release() { amx_internal::ReleaseTiles(); }

}  // namespace

#ifdef DIVE_AMX_EMULATE
Bf16MicroKernel AmxEmulatedMicroKernel() {
  return {kMr, kNr, 32, &Kernel32x32, &Configure, &Release};
}
#else
Bf16MicroKernel AmxMicroKernel() {
  return {kMr, kNr, 32, &Kernel32x32, &Configure, &Release};
}
#endif

}  // namespace dive::gemm_internal
