#include "tensor/gemm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tensor/bf16.h"
#include "tensor/cpu.h"
#include "tensor/random.h"
#include "tensor/testing/logged_warnings.h"

namespace dive {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> RandomBuffer(int64_t n, uint64_t seed) {
  Generator gen(seed);
  std::vector<float> v(n);
  for (float& x : v) x = gen.NextUniform(-1.0f, 1.0f);
  return v;
}

// A row-major matrix of `rows` x `cols` stored with leading dimension `ld`;
// the padding columns hold `pad` so reads of them are detectable.
struct Buffer {
  int64_t rows, cols, ld;
  std::vector<float> data;

  Buffer(int64_t r, int64_t c, int64_t l, uint64_t seed, float pad)
      : rows(r), cols(c), ld(l), data(std::max<int64_t>(r * l, 1), pad) {
    const std::vector<float> v = RandomBuffer(r * c, seed);
    for (int64_t i = 0; i < r; ++i) {
      for (int64_t j = 0; j < c; ++j) data[i * ld + j] = v[i * c + j];
    }
  }
  float at(int64_t i, int64_t j) const { return data[i * ld + j]; }
};

struct Case {
  bool trans_a, trans_b;
  int64_t m, n, k;
  float alpha, beta;
  int64_t pad_a = 0, pad_b = 0, pad_c = 0;  // ld = width + pad
};

std::string Describe(const Case& c) {
  return std::string("trans_a=") + (c.trans_a ? "T" : "N") +
         " trans_b=" + (c.trans_b ? "T" : "N") + " m=" + std::to_string(c.m) +
         " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) +
         " alpha=" + std::to_string(c.alpha) +
         " beta=" + std::to_string(c.beta) +
         " pads=" + std::to_string(c.pad_a) + "," + std::to_string(c.pad_b) +
         "," + std::to_string(c.pad_c);
}

// Runs Gemm on random data and compares with a double-precision triple loop.
// With beta == 0, C starts as NaN garbage, which must be ignored. Padding of
// A and B is NaN (must never be read) and padding of C is a sentinel (must
// never be written).
//
// With `nt`, runs GemmNT instead (op(A) = A, op(B) = B^T), B served block by
// block through the GemmRhs. With `precision` kBfloat16 the reference
// multiplies the operands rounded to bf16 (alpha is a power of two or -0.5
// in those cases, so scaling and rounding commute).
void CheckGemm(const Case& c, uint64_t seed, bool nt = false,
               MatmulPrecision precision = MatmulPrecision::kFloat32) {
  const bool bf16 = precision == MatmulPrecision::kBfloat16;
  SCOPED_TRACE(Describe(c) + (nt ? " (GemmNT)" : "") + (bf16 ? " bf16" : ""));
  const ScopedMatmulPrecision scope(precision);
  // op(A) is [m, k]: A is stored [m, k], or [k, m] when transposed.
  const int64_t a_rows = c.trans_a ? c.k : c.m, a_cols = c.trans_a ? c.m : c.k;
  const int64_t b_rows = c.trans_b ? c.n : c.k, b_cols = c.trans_b ? c.k : c.n;
  const Buffer a(a_rows, a_cols, a_cols + c.pad_a, seed, kNaN);
  const Buffer b(b_rows, b_cols, b_cols + c.pad_b, seed + 1, kNaN);
  constexpr float kSentinel = 12345.0f;
  Buffer cbuf(c.m, c.n, c.n + c.pad_c, seed + 2, kSentinel);
  if (c.beta == 0.0f) {
    for (int64_t i = 0; i < c.m; ++i) {
      for (int64_t j = 0; j < c.n; ++j) cbuf.data[i * cbuf.ld + j] = kNaN;
    }
  }
  const Buffer c0 = cbuf;

  if (nt) {
    ASSERT_TRUE(!c.trans_a && c.trans_b && c.alpha == 1.0f);
    GemmNT(
        c.m, c.n, c.k, a.data.data(), a.ld,
        [&](int64_t r0, int64_t rn, int64_t c0, int64_t cn, float* dst,
            int64_t ld) {
          ASSERT_TRUE(r0 >= 0 && rn > 0 && r0 + rn <= c.n);
          ASSERT_TRUE(c0 >= 0 && cn > 0 && c0 + cn <= c.k);
          for (int64_t r = 0; r < rn; ++r) {
            for (int64_t q = 0; q < cn; ++q) {
              dst[r * ld + q] = b.at(r0 + r, c0 + q);
            }
          }
        },
        c.beta, cbuf.data.data(), cbuf.ld);
  } else {
    Gemm(c.trans_a, c.trans_b, c.m, c.n, c.k, c.alpha, a.data.data(), a.ld,
         b.data.data(), b.ld, c.beta, cbuf.data.data(), cbuf.ld);
  }

  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < c.n; ++j) {
      double acc = 0, mag = 0;
      for (int64_t p = 0; p < c.k; ++p) {
        float x = c.trans_a ? a.at(p, i) : a.at(i, p);
        float y = c.trans_b ? b.at(j, p) : b.at(p, j);
        if (bf16) {
          x = RoundToBf16(x);
          y = RoundToBf16(y);
        }
        acc += static_cast<double>(x) * y;
        mag += std::fabs(static_cast<double>(x) * y);
      }
      double want = c.alpha * acc, scale = std::fabs(c.alpha) * mag;
      if (c.beta != 0.0f) {  // C0 is NaN otherwise
        want += c.beta * static_cast<double>(c0.at(i, j));
        scale += std::fabs(c.beta * c0.at(i, j));
      }
      const double tol = 1e-5 * (scale + 1.0);
      ASSERT_NEAR(cbuf.at(i, j), want, tol) << "at (" << i << ", " << j << ")";
    }
    for (int64_t j = c.n; j < cbuf.ld; ++j) {
      ASSERT_EQ(cbuf.data[i * cbuf.ld + j], kSentinel)
          << "padding of C written at (" << i << ", " << j << ")";
    }
  }
}

TEST(GemmTest, HandComputed) {
  // [[1, 2, 3], [4, 5, 6]] x [[7, 8], [9, 10], [11, 12]].
  const float a[] = {1, 2, 3, 4, 5, 6};
  const float b[] = {7, 8, 9, 10, 11, 12};
  float c[4] = {kNaN, kNaN, kNaN, kNaN};
  Gemm(false, false, 2, 2, 3, 1.0f, a, 3, b, 2, 0.0f, c, 2);
  EXPECT_EQ(c[0], 58);
  EXPECT_EQ(c[1], 64);
  EXPECT_EQ(c[2], 139);
  EXPECT_EQ(c[3], 154);

  // C = 2 * A * A^T + 1 * C.
  Gemm(false, true, 2, 2, 3, 2.0f, a, 3, a, 3, 1.0f, c, 2);
  EXPECT_EQ(c[0], 58 + 2 * 14);
  EXPECT_EQ(c[1], 64 + 2 * 32);
  EXPECT_EQ(c[2], 139 + 2 * 32);
  EXPECT_EQ(c[3], 154 + 2 * 77);

  // A^T (stored [3, 2] as b) times B^T (stored [2, 3] as a): [2, 2].
  Gemm(true, true, 2, 2, 3, 1.0f, b, 2, a, 3, 0.0f, c, 2);
  // b^T = [[7, 9, 11], [8, 10, 12]], a^T = [[1, 4], [2, 5], [3, 6]].
  EXPECT_EQ(c[0], 7 * 1 + 9 * 2 + 11 * 3);
  EXPECT_EQ(c[1], 7 * 4 + 9 * 5 + 11 * 6);
  EXPECT_EQ(c[2], 8 * 1 + 10 * 2 + 12 * 3);
  EXPECT_EQ(c[3], 8 * 4 + 10 * 5 + 12 * 6);
}

TEST(GemmTest, AllTransposeCombinationsOddSizes) {
  uint64_t seed = 1;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      CheckGemm({ta, tb, 17, 33, 9, 1.0f, 0.0f}, seed += 3);
      CheckGemm({ta, tb, 33, 9, 17, 1.0f, 0.0f}, seed += 3);
      CheckGemm({ta, tb, 64, 64, 64, 1.0f, 0.0f}, seed += 3);
      CheckGemm({ta, tb, 100, 37, 129, 1.0f, 0.0f}, seed += 3);
    }
  }
}

TEST(GemmTest, SizeOne) {
  uint64_t seed = 100;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      CheckGemm({ta, tb, 1, 1, 1, 1.0f, 0.0f}, seed += 3);
      CheckGemm({ta, tb, 1, 5, 3, 1.0f, 0.0f}, seed += 3);
      CheckGemm({ta, tb, 4, 1, 7, 1.0f, 0.0f}, seed += 3);
      CheckGemm({ta, tb, 3, 4, 1, 1.0f, 0.0f}, seed += 3);
      CheckGemm({ta, tb, 1, 1, 50, 1.0f, 0.0f}, seed += 3);
    }
  }
}

TEST(GemmTest, AlphaAndBeta) {
  uint64_t seed = 200;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      // beta = 0: NaN garbage in C is ignored.
      CheckGemm({ta, tb, 17, 33, 9, 1.5f, 0.0f}, seed += 3);
      CheckGemm({ta, tb, 17, 33, 9, -0.5f, 0.0f}, seed += 3);
      // beta = 1 accumulates.
      CheckGemm({ta, tb, 17, 33, 9, 1.0f, 1.0f}, seed += 3);
      CheckGemm({ta, tb, 9, 17, 33, 2.0f, 1.0f}, seed += 3);
      // Other beta scales C first.
      CheckGemm({ta, tb, 17, 33, 9, 1.0f, 0.5f}, seed += 3);
      CheckGemm({ta, tb, 17, 33, 9, -1.0f, -2.0f}, seed += 3);
    }
  }
}

TEST(GemmTest, BetaZeroIgnoresNaNInC) {
  const float a[] = {1, 2};
  const float b[] = {3, 4};
  float c[1] = {kNaN};
  Gemm(false, false, 1, 1, 2, 1.0f, a, 2, b, 1, 0.0f, c, 1);
  EXPECT_EQ(c[0], 11);
  c[0] = std::numeric_limits<float>::infinity();
  Gemm(false, false, 1, 1, 2, 1.0f, a, 2, b, 1, 0.0f, c, 1);
  EXPECT_EQ(c[0], 11);
}

TEST(GemmTest, LeadingDimensionsLargerThanWidth) {
  uint64_t seed = 300;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      CheckGemm({ta, tb, 17, 33, 9, 1.0f, 0.0f, 3, 5, 7}, seed += 3);
      CheckGemm({ta, tb, 17, 33, 9, 0.5f, 1.0f, 1, 0, 2}, seed += 3);
      CheckGemm({ta, tb, 5, 6, 7, 1.0f, 0.0f, 64, 64, 64}, seed += 3);
      CheckGemm({ta, tb, 1, 1, 1, 1.0f, 1.0f, 2, 2, 2}, seed += 3);
    }
  }
}

TEST(GemmTest, SubmatrixOfALargerMatrix) {
  // The middle 3x4 block of a 6x8 C gets the product of a 3x5 block of a
  // 7x10 A and a 5x4 block of a 9x6 B; everything else stays untouched.
  const std::vector<float> a = RandomBuffer(7 * 10, 400);
  const std::vector<float> b = RandomBuffer(9 * 6, 401);
  std::vector<float> c(6 * 8, -7.0f);
  const int64_t a0 = 2 * 10 + 3, b0 = 1 * 6 + 1, c0 = 1 * 8 + 2;
  Gemm(false, false, 3, 4, 5, 1.0f, a.data() + a0, 10, b.data() + b0, 6, 0.0f,
       c.data() + c0, 8);
  for (int64_t i = 0; i < 6; ++i) {
    for (int64_t j = 0; j < 8; ++j) {
      const bool inside = i >= 1 && i < 4 && j >= 2 && j < 6;
      if (!inside) {
        EXPECT_EQ(c[i * 8 + j], -7.0f) << i << ", " << j;
        continue;
      }
      double want = 0;
      for (int64_t p = 0; p < 5; ++p) {
        want += static_cast<double>(a[a0 + (i - 1) * 10 + p]) *
                b[b0 + p * 6 + (j - 2)];
      }
      EXPECT_NEAR(c[i * 8 + j], want, 1e-5) << i << ", " << j;
    }
  }
}

// Sizes that cross every blocking boundary of the packed kernel (panels of
// 6 x 64, blocks of 256 along k, 96 rows and 512 columns) and its edges.
TEST(GemmTest, SpansSeveralBlocksInEveryDimension) {
  uint64_t seed = 500;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      CheckGemm({ta, tb, 101, 577, 300, 1.0f, 0.0f}, seed += 3);
      CheckGemm({ta, tb, 97, 65, 513, -0.5f, 1.0f, 1, 2, 3}, seed += 3);
    }
  }
}

// Big enough to be split between threads, by columns (wide C) and by rows
// (tall C); each thread's slab ends inside a tile.
TEST(GemmTest, SplitBetweenThreads) {
  uint64_t seed = 600;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      CheckGemm({ta, tb, 23, 1000, 70, 1.0f, 0.0f}, seed += 3);
      CheckGemm({ta, tb, 1001, 23, 70, 2.0f, 0.5f}, seed += 3);
    }
  }
}

// GemmNT: tails of every tile and block (6 rows of A, 4 rows of B, 16 and
// 1024 along k, 128 rows of B), beta, and a split between threads.
TEST(GemmTest, TransposedRightOperandByRows) {
  uint64_t seed = 700;
  for (const Case& c : std::vector<Case>{
           {false, true, 1, 1, 1, 1.0f, 0.0f},
           {false, true, 6, 4, 16, 1.0f, 0.0f},
           {false, true, 7, 5, 17, 1.0f, 1.0f},
           {false, true, 13, 258, 1100, 1.0f, 0.5f, 3, 1, 2},
           {false, true, 64, 576, 576, 1.0f, 1.0f},
           {false, true, 3, 25, 784, 1.0f, 0.0f, 0, 0, 5},
       }) {
    CheckGemm(c, seed += 3, /*nt=*/true);
  }
}

// The epilogue on a packed GEMM, through tile edges (m 13, n 130), several
// blocks along k (600), with beta: bias,
// addend and ReLU give what the same GEMM gives followed by those passes,
// bit for bit (same sum order), and k = 0 applies it to beta * C.
TEST(GemmTest, EpilogueMatchesSeparatePasses) {
  for (const int64_t k : {600, 70, 0}) {
    SCOPED_TRACE("k " + std::to_string(k));
    const int64_t m = 13, n = 130, ld_add = n + 3;
    Generator gen(42 + k);
    const std::vector<float> a = gen.Normal({m, std::max<int64_t>(k, 1)}, 0, 1)
                                     .ToVector();
    const std::vector<float> b = gen.Normal({std::max<int64_t>(k, 1), n}, 0, 1)
                                     .ToVector();
    const std::vector<float> bias = gen.Normal({m}, 0, 1).ToVector();
    const std::vector<float> add = gen.Normal({m, ld_add}, 0, 1).ToVector();
    const std::vector<float> c0 = gen.Normal({m, n}, 0, 1).ToVector();
    GemmLhs lhs;
    lhs.Pack(false, m, k, a.data(), std::max<int64_t>(k, 1));
    const auto rhs = [&](int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                         float* dst, int64_t ld) {
      for (int64_t p = 0; p < kc; ++p) {
        for (int64_t j = 0; j < nc; ++j) dst[p * ld + j] = b[(p0 + p) * n + j0 + j];
      }
    };
    std::vector<float> want = c0;
    Gemm(lhs, n, rhs, 0.5f, want.data(), n);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        float& v = want[i * n + j];
        v = v + bias[i] + add[i * ld_add + j];
        v = std::max(v, 0.0f);
      }
    }
    std::vector<float> got = c0;
    GemmEpilogue epilogue;
    epilogue.row_bias = bias.data();
    epilogue.addend = add.data();
    epilogue.ld_addend = ld_add;
    epilogue.relu = true;
    Gemm(lhs, n, rhs, 0.5f, got.data(), n, epilogue);
    EXPECT_EQ(got, want);
  }
}

// bf16 products with float32 sums through every entry point and edge: the
// same cases as above, against the products of the rounded operands.
TEST(GemmTest, Bfloat16MultipliesRoundedOperands) {
  uint64_t seed = 800;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (const Case& c : std::vector<Case>{
               {ta, tb, 7, 9, 5, 1.0f, 0.0f},
               {ta, tb, 101, 577, 300, 1.0f, 0.0f},
               {ta, tb, 97, 65, 513, -0.5f, 1.0f, 1, 2, 3},
               {ta, tb, 1001, 23, 70, 2.0f, 0.5f},
           }) {
        CheckGemm(c, seed += 3, false, MatmulPrecision::kBfloat16);
      }
    }
  }
  for (const Case& c : std::vector<Case>{
           {false, true, 7, 5, 17, 1.0f, 1.0f},
           {false, true, 13, 258, 1100, 1.0f, 0.5f, 3, 1, 2},
       }) {
    CheckGemm(c, seed += 3, /*nt=*/true, MatmulPrecision::kBfloat16);
  }
}

// ... and the rounding really happens: bf16 results differ from float32 ones
// by about bf16's precision, in both the packed and the GemmNT paths.
TEST(GemmTest, Bfloat16DiffersFromFloat32ByItsPrecision) {
  constexpr int64_t n = 64;
  const std::vector<float> a = RandomBuffer(n * n, 1), b = RandomBuffer(n * n, 2);
  for (bool nt : {false, true}) {
    std::vector<float> c32(n * n), c16(n * n);
    auto run = [&](std::vector<float>& c) {
      if (!nt) {
        Gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
             c.data(), n);
        return;
      }
      GemmNT(
          n, n, n, a.data(), n,
          [&](int64_t r0, int64_t rn, int64_t c0, int64_t cn, float* dst,
              int64_t ld) {
            for (int64_t r = 0; r < rn; ++r) {
              for (int64_t q = 0; q < cn; ++q) {
                dst[r * ld + q] = b[(r0 + r) * n + c0 + q];
              }
            }
          },
          0.0f, c.data(), n);
    };
    run(c32);
    {
      const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
      run(c16);
    }
    double worst = 0;
    for (int64_t i = 0; i < n * n; ++i) {
      worst = std::max<double>(worst, std::fabs(c16[i] - c32[i]));
    }
    // Sums of 64 products of values in [-1, 1]: the products' rounding
    // errors (~2^-9 each) add up to ~1e-2 at worst, float32's to ~1e-6.
    EXPECT_GT(worst, 1e-4) << (nt ? "GemmNT" : "Gemm");
    EXPECT_LT(worst, 5e-2) << (nt ? "GemmNT" : "Gemm");
  }
}

TEST(GemmTest, PrecisionIsScopedPerThread) {
  EXPECT_EQ(GetMatmulPrecision(), MatmulPrecision::kFloat32);
  {
    const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
    EXPECT_EQ(GetMatmulPrecision(), MatmulPrecision::kBfloat16);
    MatmulPrecision other = MatmulPrecision::kBfloat16;
    std::thread([&] { other = GetMatmulPrecision(); }).join();
    EXPECT_EQ(other, MatmulPrecision::kFloat32);
    {
      const ScopedMatmulPrecision fp32(MatmulPrecision::kFloat32);
      EXPECT_EQ(GetMatmulPrecision(), MatmulPrecision::kFloat32);
    }
    EXPECT_EQ(GetMatmulPrecision(), MatmulPrecision::kBfloat16);
  }
  EXPECT_EQ(GetMatmulPrecision(), MatmulPrecision::kFloat32);
}

TEST(GemmTest, ZeroAlphaOnlyScalesC) {
  const float a[] = {kNaN, kNaN};
  float c[2] = {1, 2};
  Gemm(false, false, 1, 2, 1, 0.0f, a, 1, a, 2, 3.0f, c, 2);
  EXPECT_EQ(c[0], 3.0f);
  EXPECT_EQ(c[1], 6.0f);
}

TEST(GemmTest, EmptyInnerDimensionScalesC) {
  float c[4] = {kNaN, kNaN, kNaN, kNaN};
  Gemm(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.0f, c, 2);
  for (float v : c) EXPECT_EQ(v, 0.0f);
  float d[4] = {1, 2, 3, 4};
  Gemm(true, false, 2, 2, 0, 1.0f, nullptr, 2, nullptr, 2, 0.5f, d, 2);
  EXPECT_EQ(d[0], 0.5f);
  EXPECT_EQ(d[3], 2.0f);
}

TEST(GemmTest, EmptyOutputIsANoOp) {
  float c[2] = {1, 2};
  const float a[2] = {1, 1};
  Gemm(false, false, 0, 2, 1, 1.0f, a, 1, a, 2, 0.0f, c, 2);
  Gemm(false, false, 2, 0, 1, 1.0f, a, 1, a, 1, 0.0f, c, 1);
  EXPECT_EQ(c[0], 1);
  EXPECT_EQ(c[1], 2);
}

// ---- The AMX self-check: on the AMX path only (gemm_amx_test on CPUs with
// AMX, gemm_amx_emulated_test); skipped on the others.

TEST(GemmAmxSelfCheckTest, PassesOnTheAmxPath) {
  const absl::Status verdict = AmxSelfCheck();
  if (absl::IsFailedPrecondition(verdict)) GTEST_SKIP() << verdict.message();
  EXPECT_TRUE(verdict.ok()) << verdict;
  EXPECT_EQ(ActiveIsa(), Isa::kAmx);
}

struct Fault {
  AmxSelfCheckFault fault;
  const char* name;
  const char* reason;  // in the warning
};

class GemmAmxFallbackTest : public ::testing::TestWithParam<Fault> {
 protected:
  void SetUp() override {
    if (const absl::Status verdict = AmxSelfCheck(); !verdict.ok()) {
      GTEST_SKIP() << "not on a passing AMX path: " << verdict;
    }
  }

  // Back on the AMX path, which the next bf16 product checks again.
  void TearDown() override {
    SetAmxSelfCheckFaultForTesting(AmxSelfCheckFault::kNone);
    ForceActiveIsaForTesting(isa_);
  }

 private:
  const Isa isa_ = ActiveIsa();
};

// The first bf16 products, from three threads at once, run the check; it
// fails, and they and every product after them run on AVX512-BF16, right,
// after one warning.
TEST_P(GemmAmxFallbackTest, FallsBackToAvx512Bf16WithOneWarning) {
  SetAmxSelfCheckFaultForTesting(GetParam().fault);
  LoggedWarnings warnings;
  std::vector<std::thread> threads;
  for (uint64_t seed : {900, 910, 920}) {
    threads.emplace_back([seed] {
      CheckGemm({false, false, 37, 45, 70, 1.0f, 0.0f}, seed, false,
                MatmulPrecision::kBfloat16);
    });
  }
  for (std::thread& t : threads) t.join();
  CheckGemm({true, false, 101, 577, 300, 1.0f, 0.5f}, 930, false,
            MatmulPrecision::kBfloat16);
  CheckGemm({false, true, 7, 5, 17, 1.0f, 1.0f}, 940, /*nt=*/true,
            MatmulPrecision::kBfloat16);
  EXPECT_EQ(ActiveIsa(), Isa::kAvx512Bf16);
  EXPECT_THAT(AmxSelfCheck().message(), HasSubstr(GetParam().reason));
  EXPECT_THAT(warnings.lines,
              ElementsAre(AllOf(StartsWith("AMX self-check failed ("),
                                HasSubstr(GetParam().reason),
                                EndsWith("); using avx512_bf16 kernels"))));
}

INSTANTIATE_TEST_SUITE_P(
    Faults, GemmAmxFallbackTest,
    ::testing::Values(
        Fault{AmxSelfCheckFault::kPermissionRefused, "PermissionRefused",
              "Linux refused the tile data"},
        Fault{AmxSelfCheckFault::kCorruptResult, "CorruptResult",
              "tile result differs from the bf16 products by 3 at C[4][17]"},
        Fault{AmxSelfCheckFault::kSigill, "Sigill", "SIGILL in the tile GEMM"}),
    [](const ::testing::TestParamInfo<Fault>& info) {
      return std::string(info.param.name);
    });

}  // namespace
// PackWeights packs unfrozen weights into the scratch GemmLhs at each call,
// and frozen ones (Tensor::Frozen) once per precision, kept with them: the
// same GemmLhs at every later call, the same panels as the scratch pack.
TEST(PackWeightsTest, FrozenWeightsArePackedOncePerPrecision) {
  const Tensor w = Normal({13, 37}, 0, 1), frozen = w.Frozen();
  GemmLhs scratch;
  for (MatmulPrecision precision :
       {MatmulPrecision::kFloat32, MatmulPrecision::kBfloat16}) {
    const ScopedMatmulPrecision scope(precision);
    EXPECT_EQ(&PackWeights(w, 13, 37, scratch), &scratch);
    const GemmLhs& kept = PackWeights(frozen, 13, 37, scratch);
    EXPECT_NE(&kept, &scratch);
    EXPECT_EQ(&PackWeights(frozen, 13, 37, scratch), &kept);
    // Both hold the product with the identity's columns: compare C = A * I.
    std::vector<float> c_kept(13 * 37), c_scratch(13 * 37);
    const auto identity = [](int64_t r0, int64_t rn, int64_t c0, int64_t cn,
                             float* dst, int64_t ld) {
      for (int64_t r = 0; r < rn; ++r) {
        for (int64_t c = 0; c < cn; ++c) dst[r * ld + c] = r0 + r == c0 + c;
      }
    };
    Gemm(kept, 37, identity, 0.0f, c_kept.data(), 37);
    Gemm(PackWeights(w, 13, 37, scratch), 37, identity, 0.0f, c_scratch.data(),
         37);
    EXPECT_EQ(c_kept, c_scratch);
  }
  EXPECT_EQ(frozen.frozen_forms()->size(), 2u);
}

TEST(PackWeightsDeathTest, NamesWeightsThatAreNotContiguousFloat32) {
  const Tensor w = Tensor::Zeros({4, 3});
  GemmLhs scratch;
  EXPECT_DEATH(PackWeights(w.Transpose(0, 1), 3, 4, scratch),
               "PackWeights: weights \\[3, 4\\] \\(float32\\) are not a "
               "contiguous float32 \\[3, 4\\]");
  EXPECT_DEATH(PackWeights(w, 4, 4, scratch), "are not a contiguous float32");
}

}  // namespace dive
