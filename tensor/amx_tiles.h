// File: tensor/amx_tiles.h
// -----------------------------------------------------------------------------
//
// Internal to the AMX kernel files (gemm_kernels_amx.cc, bf16;
// qgemm_kernels_amx.cc, int8): the tile setup they share and the tile
// instructions they use, as DIVE_TILE_* macros. Both kernels use palette 1
// with every one of the eight tiles 16 rows of 64 bytes (ConfigureTiles).
//
// Built with DIVE_AMX_EMULATE (the testonly *_amx_emulated libraries) the
// macros compute the instructions in C++ on thread-local tile registers, so
// the kernels' layouts and edges are tested on CPUs without AMX; otherwise
// they are the intrinsics, and the file that uses one needs its -mamx-*
// flag (-mamx-tile for all; -mamx-bf16 for DIVE_TILE_DPBF16, -mamx-int8 for
// DIVE_TILE_DPBUSD and DIVE_TILE_DPBSUD). The tile numbers given to the
// macros must be constants (the intrinsics encode them).
//
// Everything here has internal linkage, so each kernel file compiles its own
// copy for its own instruction set (gemm_kernels.h says why that matters)
// and, emulated, has its own tile registers, as before this header.
//
// Example (a 16 x 16 float32 tile C += A B, A 16 x 32 bf16, B 16 pairs):
//
//   ConfigureTiles();
//   DIVE_TILE_LOAD(0, c, ldc * 4);
//   DIVE_TILE_LOAD(4, a, lda * 2);
//   DIVE_TILE_LOAD(6, b, 64);
//   DIVE_TILE_DPBF16(0, 4, 6);
//   DIVE_TILE_STORE(0, c, ldc * 4);
//   ReleaseTiles();

#ifndef TENSOR_AMX_TILES_H_
#define TENSOR_AMX_TILES_H_

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace dive::amx_internal {
namespace {

constexpr int kTileRows = 16;
constexpr int kTileBytes = 64;  // per row
constexpr int kTiles = 8;

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
  uint8_t data[kTiles][kTileRows * kTileBytes];
  TileConfig config;
};
thread_local Tiles tiles;

inline float Bf16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

inline void TileLoadConfig(const TileConfig* c) { tiles.config = *c; }
inline void TileRelease() { tiles.config = TileConfig(); }
inline void TileZero(int t) {
  std::memset(tiles.data[t], 0, sizeof(tiles.data[t]));
}
inline void TileLoad(int t, const void* base, int64_t stride) {
  for (int r = 0; r < tiles.config.rows[t]; ++r) {
    std::memcpy(tiles.data[t] + r * kTileBytes,
                static_cast<const uint8_t*>(base) + r * stride,
                tiles.config.colsb[t]);
  }
}
inline void TileStore(int t, void* base, int64_t stride) {
  for (int r = 0; r < tiles.config.rows[t]; ++r) {
    std::memcpy(static_cast<uint8_t*>(base) + r * stride,
                tiles.data[t] + r * kTileBytes, tiles.config.colsb[t]);
  }
}
// TDPBF16PS: C[m][n] += sum over pairs q of
// A[m][2q] B[q][2n] + A[m][2q+1] B[q][2n+1] (bf16, summed in float32).
inline void TileDpBf16(int c, int a, int b) {
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
// TDPB[SU][SU]D: C[m][n] += sum over quads q, bytes t of
// A[m][4q + t] * B[q][4n + t], the bytes of A and B signed or not as the
// instruction says (summed in int32).
template <bool kASigned, bool kBSigned>
void TileDp(int c, int a, int b) {
  const TileConfig& cfg = tiles.config;
  const int rows = cfg.rows[c], cols = cfg.colsb[c] / 4, k = cfg.colsb[a];
  int32_t av[kTileRows][kTileBytes], bv[kTileRows][kTileBytes];
  for (int r = 0; r < kTileRows; ++r) {
    for (int x = 0; x < kTileBytes; ++x) {
      const uint8_t ab = tiles.data[a][r * kTileBytes + x];
      const uint8_t bb = tiles.data[b][r * kTileBytes + x];
      av[r][x] = kASigned ? static_cast<int8_t>(ab) : ab;
      bv[r][x] = kBSigned ? static_cast<int8_t>(bb) : bb;
    }
  }
  for (int m = 0; m < rows; ++m) {
    for (int n = 0; n < cols; ++n) {
      int32_t acc;
      std::memcpy(&acc, tiles.data[c] + m * kTileBytes + 4 * n, 4);
      // A[m][4q + t] * B[q][4n + t] over quads q and their bytes t.
      for (int x = 0; x < k; ++x) acc += av[m][x] * bv[x / 4][4 * n + x % 4];
      std::memcpy(tiles.data[c] + m * kTileBytes + 4 * n, &acc, 4);
    }
  }
}
#define DIVE_TILE_LOADCONFIG(c) ::dive::amx_internal::TileLoadConfig(c)
#define DIVE_TILE_RELEASE() ::dive::amx_internal::TileRelease()
#define DIVE_TILE_ZERO(t) ::dive::amx_internal::TileZero(t)
#define DIVE_TILE_LOAD(t, base, stride) \
  ::dive::amx_internal::TileLoad(t, base, stride)
#define DIVE_TILE_STORE(t, base, stride) \
  ::dive::amx_internal::TileStore(t, base, stride)
#define DIVE_TILE_DPBF16(c, a, b) ::dive::amx_internal::TileDpBf16(c, a, b)
#define DIVE_TILE_DPBUSD(c, a, b) \
  ::dive::amx_internal::TileDp<false, true>(c, a, b)
#define DIVE_TILE_DPBSUD(c, a, b) \
  ::dive::amx_internal::TileDp<true, false>(c, a, b)
#else
#define DIVE_TILE_LOADCONFIG(c) _tile_loadconfig(c)
#define DIVE_TILE_RELEASE() _tile_release()
#define DIVE_TILE_ZERO(t) _tile_zero(t)
#define DIVE_TILE_LOAD(t, base, stride) _tile_loadd(t, base, stride)
#define DIVE_TILE_STORE(t, base, stride) _tile_stored(t, base, stride)
#define DIVE_TILE_DPBF16(c, a, b) _tile_dpbf16ps(c, a, b)
#define DIVE_TILE_DPBUSD(c, a, b) _tile_dpbusd(c, a, b)
#define DIVE_TILE_DPBSUD(c, a, b) _tile_dpbsud(c, a, b)
#endif

// Loads the configuration both kernels use: palette 1, every tile 16 rows of
// 64 bytes. A kernel's Configure (run by each thread before its first tile)
// calls this; its Release calls ReleaseTiles.
inline void ConfigureTiles() {
  TileConfig config;
  for (int t = 0; t < kTiles; ++t) {
    config.rows[t] = kTileRows;
    config.colsb[t] = kTileBytes;
  }
  DIVE_TILE_LOADCONFIG(&config);
}

inline void ReleaseTiles() { DIVE_TILE_RELEASE(); }

}  // namespace
}  // namespace dive::amx_internal

#endif  // TENSOR_AMX_TILES_H_
