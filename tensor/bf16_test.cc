#include "tensor/bf16.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "gtest/gtest.h"

namespace dive {
namespace {

float FromBits(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}

TEST(Bf16Test, ExactValuesAreKept) {
  for (float x : {0.0f, -0.0f, 1.0f, -2.5f, 0.15625f, 65536.0f, 3.140625f}) {
    EXPECT_EQ(RoundToBf16(x), x);
  }
  EXPECT_TRUE(std::signbit(RoundToBf16(-0.0f)));
}

TEST(Bf16Test, RoundsToNearestTiesToEven) {
  // bf16 keeps 7 mantissa bits: next to 1 are 1 - 2^-8 and 1 + 2^-7.
  EXPECT_EQ(RoundToBf16(1.0f + 0x1p-8f), 1.0f);                 // tie: even
  EXPECT_EQ(RoundToBf16(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);   // tie: even
  EXPECT_EQ(RoundToBf16(1.0f + 0x1p-8f + 0x1p-20f), 1.0f + 0x1p-7f);
  EXPECT_EQ(RoundToBf16(1.0f + 0x1p-9f), 1.0f);
  EXPECT_EQ(RoundToBf16(3.14159265f), 3.140625f);
  EXPECT_EQ(RoundToBf16(-3.14159265f), -3.140625f);
  EXPECT_EQ(FloatToBf16(1.0f), 0x3F80);
  EXPECT_EQ(Bf16ToFloat(0xC000), -2.0f);
}

TEST(Bf16Test, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(RoundToBf16(inf), inf);
  EXPECT_EQ(RoundToBf16(-inf), -inf);
  EXPECT_TRUE(std::isnan(RoundToBf16(std::nanf(""))));
  // A NaN whose payload sits only in the dropped bits stays NaN.
  EXPECT_TRUE(std::isnan(RoundToBf16(FromBits(0x7F800001u))));
  // Past the largest bf16 (0x7F7F): infinity.
  EXPECT_EQ(RoundToBf16(std::numeric_limits<float>::max()), inf);
  // Subnormals round like everything else.
  EXPECT_EQ(RoundToBf16(FromBits(0x00010000u)), FromBits(0x00010000u));
}

TEST(Bf16Test, RelativeErrorAtMostHalfAnUlp) {
  float worst = 0;
  for (float x = 1e-3f; x < 1e3f; x *= 1.0137f) {
    worst = std::max(worst, std::abs(RoundToBf16(x) - x) / x);
  }
  EXPECT_LE(worst, 0x1p-8f);
  EXPECT_GT(worst, 0x1p-10f);  // the rounding really drops bits
}

TEST(Bf16Test, ArrayVersionMatchesScalar) {
  float x[5] = {1.0f + 0x1p-8f, 3.14159265f, -7.77f, 0.0f, 1e-30f};
  float y[5];
  std::memcpy(y, x, sizeof(x));
  RoundToBf16(y, 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(y[i], RoundToBf16(x[i]));
}

}  // namespace
}  // namespace dive
