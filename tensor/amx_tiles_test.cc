// The emulated tile instructions of tensor/amx_tiles.h (DIVE_AMX_EMULATE)
// against plain loops over the same bytes: the configuration, loads and
// stores with strides, TDPBF16PS and both int8 products. They need no
// AVX-512, so this runs on every x86-64 CPU, where the AMX kernels' own
// emulated tests (gemm_amx_emulated_test, qgemm_amx_emulated_test) may skip.

#include "tensor/amx_tiles.h"

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace dive::amx_internal {
namespace {

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (uint8_t& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

uint16_t Bf16Bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  return static_cast<uint16_t>(bits >> 16);  // exact: x has 8 mantissa bits
}

float FromBf16(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

TEST(AmxTilesEmulatedTest, LoadAndStoreFollowTheStrides) {
  ConfigureTiles();
  const int64_t stride = 80;  // bytes between rows, more than a tile's 64
  const std::vector<uint8_t> src = RandomBytes(kTileRows * stride, 1);
  std::vector<uint8_t> dst(kTileRows * stride, 0xee);
  DIVE_TILE_LOAD(3, src.data(), stride);
  DIVE_TILE_STORE(3, dst.data(), stride);
  for (int r = 0; r < kTileRows; ++r) {
    for (int x = 0; x < stride; ++x) {
      EXPECT_EQ(dst[r * stride + x],
                x < kTileBytes ? src[r * stride + x] : 0xee)
          << "row " << r << " byte " << x;
    }
  }
  DIVE_TILE_ZERO(3);
  DIVE_TILE_STORE(3, dst.data(), stride);
  for (int r = 0; r < kTileRows; ++r) {
    for (int x = 0; x < kTileBytes; ++x) EXPECT_EQ(dst[r * stride + x], 0);
  }
  ReleaseTiles();
}

TEST(AmxTilesEmulatedTest, DpBf16SumsPairs) {
  ConfigureTiles();
  // A 16 x 32 bf16, B 16 pair rows of 16 pairs, C 16 x 16 float32; small
  // integers, so every sum is exact in any order.
  std::mt19937 rng(2);
  std::uniform_int_distribution<int> v(-8, 8);
  uint16_t a[kTileRows][32], b[kTileRows][32];
  float c[kTileRows][kTileRows];
  for (int i = 0; i < kTileRows; ++i) {
    for (int j = 0; j < 32; ++j) {
      a[i][j] = Bf16Bits(static_cast<float>(v(rng)));
      b[i][j] = Bf16Bits(static_cast<float>(v(rng)));
    }
    for (int j = 0; j < kTileRows; ++j) c[i][j] = static_cast<float>(v(rng));
  }
  float expected[kTileRows][kTileRows];
  for (int m = 0; m < kTileRows; ++m) {
    for (int n = 0; n < kTileRows; ++n) {
      float acc = c[m][n];
      for (int q = 0; q < kTileRows; ++q) {
        acc += FromBf16(a[m][2 * q]) * FromBf16(b[q][2 * n]) +
               FromBf16(a[m][2 * q + 1]) * FromBf16(b[q][2 * n + 1]);
      }
      expected[m][n] = acc;
    }
  }
  DIVE_TILE_LOAD(0, c, kTileBytes);
  DIVE_TILE_LOAD(4, a, kTileBytes);
  DIVE_TILE_LOAD(6, b, kTileBytes);
  DIVE_TILE_DPBF16(0, 4, 6);
  DIVE_TILE_STORE(0, c, kTileBytes);
  for (int m = 0; m < kTileRows; ++m) {
    for (int n = 0; n < kTileRows; ++n) {
      EXPECT_EQ(c[m][n], expected[m][n]) << m << ", " << n;
    }
  }
  ReleaseTiles();
}

// C[m][n] += sum over x < 64 of A[m][x] * B[x / 4][4n + x % 4], the bytes
// signed as asked.
void ExpectInt8Product(bool a_signed) {
  ConfigureTiles();
  const std::vector<uint8_t> a = RandomBytes(kTileRows * kTileBytes, 3);
  const std::vector<uint8_t> b = RandomBytes(kTileRows * kTileBytes, 4);
  int32_t c[kTileRows][kTileRows];
  for (int m = 0; m < kTileRows; ++m) {
    for (int n = 0; n < kTileRows; ++n) c[m][n] = 1000 * m - 37 * n;
  }
  int32_t expected[kTileRows][kTileRows];
  for (int m = 0; m < kTileRows; ++m) {
    for (int n = 0; n < kTileRows; ++n) {
      int32_t acc = c[m][n];
      for (int x = 0; x < kTileBytes; ++x) {
        const uint8_t ab = a[m * kTileBytes + x];
        const uint8_t bb = b[(x / 4) * kTileBytes + 4 * n + x % 4];
        const int32_t av = a_signed ? static_cast<int8_t>(ab) : ab;
        const int32_t bv = a_signed ? bb : static_cast<int8_t>(bb);
        acc += av * bv;
      }
      expected[m][n] = acc;
    }
  }
  DIVE_TILE_LOAD(1, c, kTileBytes);
  DIVE_TILE_LOAD(5, a.data(), kTileBytes);
  DIVE_TILE_LOAD(7, b.data(), kTileBytes);
  if (a_signed) {
    DIVE_TILE_DPBSUD(1, 5, 7);
  } else {
    DIVE_TILE_DPBUSD(1, 5, 7);
  }
  DIVE_TILE_STORE(1, c, kTileBytes);
  for (int m = 0; m < kTileRows; ++m) {
    for (int n = 0; n < kTileRows; ++n) {
      EXPECT_EQ(c[m][n], expected[m][n]) << m << ", " << n;
    }
  }
  ReleaseTiles();
}

TEST(AmxTilesEmulatedTest, DpbusdIsUnsignedTimesSigned) {
  ExpectInt8Product(/*a_signed=*/false);
}

TEST(AmxTilesEmulatedTest, DpbsudIsSignedTimesUnsigned) {
  ExpectInt8Product(/*a_signed=*/true);
}

TEST(AmxTilesEmulatedTest, ReleaseClearsTheConfiguration) {
  ConfigureTiles();
  ReleaseTiles();
  // Released, a load copies no rows (the tile has none configured).
  const std::vector<uint8_t> src = RandomBytes(kTileRows * kTileBytes, 5);
  std::vector<uint8_t> dst(kTileRows * kTileBytes, 0xee);
  DIVE_TILE_LOAD(2, src.data(), kTileBytes);
  DIVE_TILE_STORE(2, dst.data(), kTileBytes);
  for (uint8_t x : dst) EXPECT_EQ(x, 0xee);
}

}  // namespace
}  // namespace dive::amx_internal
