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
// tile instructions are computed in C++ instead, and the kernel is
// AmxEmulatedMicroKernel, which the GEMM's AMX path takes where it is linked:
// so the layouts, the edges and the GEMM's use of this kernel are tested on
// CPUs without AMX; the instructions themselves run only on CPUs that have
// them.

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "tensor/gemm_kernels.h"

namespace dive::gemm_internal {
namespace {

constexpr int kTileRows = 16;
constexpr int kTileBytes = 64;  // per row
constexpr int kMr = 2 * kTileRows;
constexpr int kNr = 2 * kTileRows;

// The 64-byte operand of LDTILECFG (no alignment required; none asked for,
// since over-aligned thread-local storage in shared libraries is fragile).
struct TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64);

#ifdef DIVE_AMX_EMULATE
// The tile registers of this thread, and the instructions on them.
struct Tiles {
  uint8_t data[8][kTileRows * kTileBytes];
  TileConfig config;
};
thread_local Tiles tiles;

float Bf16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

void TileLoadConfig(const TileConfig* c) { tiles.config = *c; }
void TileRelease() { tiles.config = TileConfig(); }
void TileZero(int t) { std::memset(tiles.data[t], 0, sizeof(tiles.data[t])); }
void TileLoad(int t, const void* base, int64_t stride) {
  for (int r = 0; r < tiles.config.rows[t]; ++r) {
    std::memcpy(tiles.data[t] + r * kTileBytes,
                static_cast<const uint8_t*>(base) + r * stride,
                tiles.config.colsb[t]);
  }
}
void TileStore(int t, void* base, int64_t stride) {
  for (int r = 0; r < tiles.config.rows[t]; ++r) {
    std::memcpy(static_cast<uint8_t*>(base) + r * stride,
                tiles.data[t] + r * kTileBytes, tiles.config.colsb[t]);
  }
}
// C[m][n] += sum over pairs q of A[m][2q] B[q][2n] + A[m][2q+1] B[q][2n+1].
void TileDpBf16(int c, int a, int b) {
  const TileConfig& cfg = tiles.config;
  for (int m = 0; m < cfg.rows[c]; ++m) {
    for (int n = 0; n < cfg.colsb[c] / 4; ++n) {
      float acc;
      std::memcpy(&acc, tiles.data[c] + m * kTileBytes + 4 * n, 4);
      for (int q = 0; q < cfg.colsb[a] / 4; ++q) {
        const uint8_t* pa = tiles.data[a] + m * kTileBytes + 4 * q;
        const uint8_t* pb = tiles.data[b] + q * kTileBytes + 4 * n;
        acc += Bf16(pa) * Bf16(pb) + Bf16(pa + 2) * Bf16(pb + 2);
      }
      std::memcpy(tiles.data[c] + m * kTileBytes + 4 * n, &acc, 4);
    }
  }
}
#define DIVE_TILE_LOADCONFIG(c) TileLoadConfig(c)
#define DIVE_TILE_RELEASE() TileRelease()
#define DIVE_TILE_ZERO(t) TileZero(t)
#define DIVE_TILE_LOAD(t, base, stride) TileLoad(t, base, stride)
#define DIVE_TILE_STORE(t, base, stride) TileStore(t, base, stride)
#define DIVE_TILE_DPBF16(c, a, b) TileDpBf16(c, a, b)
#else
#define DIVE_TILE_LOADCONFIG(c) _tile_loadconfig(c)
#define DIVE_TILE_RELEASE() _tile_release()
#define DIVE_TILE_ZERO(t) _tile_zero(t)
#define DIVE_TILE_LOAD(t, base, stride) _tile_loadd(t, base, stride)
#define DIVE_TILE_STORE(t, base, stride) _tile_stored(t, base, stride)
#define DIVE_TILE_DPBF16(c, a, b) _tile_dpbf16ps(c, a, b)
#endif

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

void Configure() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.rows[t] = kTileRows;
    config.colsb[t] = kTileBytes;
  }
  DIVE_TILE_LOADCONFIG(&config);
}

void Release() { DIVE_TILE_RELEASE(); }

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
