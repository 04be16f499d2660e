#include "tensor/random.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tensor/tensor.h"

namespace dive {
namespace {

using ::testing::ElementsAre;

constexpr int64_t kSamples = 100000;

struct Moments {
  double mean, var, min, max;
};

Moments ComputeMoments(const std::vector<float>& v) {
  double sum = 0, min = v[0], max = v[0];
  for (float x : v) {
    sum += x;
    min = std::min<double>(min, x);
    max = std::max<double>(max, x);
  }
  const double mean = sum / v.size();
  double sq = 0;
  for (float x : v) sq += (x - mean) * (x - mean);
  return {mean, sq / v.size(), min, max};
}

TEST(GeneratorTest, SameSeedGivesSameStreams) {
  Generator a(42), b(42);
  EXPECT_EQ(a.Uniform({100}, -1, 1).ToVector(),
            b.Uniform({100}, -1, 1).ToVector());
  EXPECT_EQ(a.Normal({100}, 0, 1).ToVector(), b.Normal({100}, 0, 1).ToVector());
  EXPECT_EQ(a.Bernoulli({100}, 0.5f).ToVector(),
            b.Bernoulli({100}, 0.5f).ToVector());
  EXPECT_EQ(a.Permutation(50), b.Permutation(50));
  EXPECT_EQ(a.NextIndex(1000), b.NextIndex(1000));
  EXPECT_EQ(a.NextUniform(0, 1), b.NextUniform(0, 1));
  EXPECT_EQ(a.NextNormal(0, 1), b.NextNormal(0, 1));
}

TEST(GeneratorTest, DifferentSeedsGiveDifferentStreams) {
  Generator a(1), b(2);
  const std::vector<float> ua = a.Uniform({100}, 0, 1).ToVector();
  const std::vector<float> ub = b.Uniform({100}, 0, 1).ToVector();
  int equal = 0;
  for (size_t i = 0; i < ua.size(); ++i) equal += ua[i] == ub[i];
  EXPECT_LT(equal, 3);
  EXPECT_NE(Generator(1).Permutation(100), Generator(2).Permutation(100));
  EXPECT_NE(Generator(1).Normal({10}, 0, 1).ToVector(),
            Generator(2).Normal({10}, 0, 1).ToVector());
}

TEST(GeneratorTest, ConsecutiveDrawsAdvanceTheStream) {
  Generator g(3);
  EXPECT_NE(g.Uniform({10}, 0, 1).ToVector(), g.Uniform({10}, 0, 1).ToVector());
}

TEST(GeneratorTest, SeedRestartsTheStream) {
  Generator g(9);
  const std::vector<float> first = g.Normal({20}, 0, 1).ToVector();
  g.Uniform({5}, 0, 1);
  g.Seed(9);
  EXPECT_EQ(g.Normal({20}, 0, 1).ToVector(), first);
}

TEST(GeneratorTest, UniformRangeAndMoments) {
  Generator g(7);
  const float lo = -3.0f, hi = 5.0f;
  const Tensor t = g.Uniform({kSamples / 100, 100}, lo, hi);
  EXPECT_EQ(t.shape(), Shape({kSamples / 100, 100}));
  EXPECT_EQ(t.dtype(), DType::kFloat32);
  const Moments m = ComputeMoments(t.ToVector());
  EXPECT_GE(m.min, lo);
  EXPECT_LT(m.max, hi);
  EXPECT_LT(m.min, lo + 0.01);  // the whole range is covered
  EXPECT_GT(m.max, hi - 0.01);
  // Mean 1, variance (hi - lo)^2 / 12 = 5.333; standard error of the mean
  // is about 0.007.
  EXPECT_NEAR(m.mean, 1.0, 0.05);
  EXPECT_NEAR(m.var, 64.0 / 12.0, 0.1);
}

TEST(GeneratorTest, UniformUnitIntervalIsHalfOpen) {
  Generator g(11);
  const Moments m = ComputeMoments(g.Uniform({kSamples}, 0, 1).ToVector());
  EXPECT_GE(m.min, 0.0);
  EXPECT_LT(m.max, 1.0);
  EXPECT_NEAR(m.mean, 0.5, 0.01);
  EXPECT_NEAR(m.var, 1.0 / 12.0, 0.002);
}

TEST(GeneratorTest, NormalMoments) {
  Generator g(8);
  const Tensor t = g.Normal({kSamples}, 2.0f, 0.5f);
  const std::vector<float> v = t.ToVector();
  const Moments m = ComputeMoments(v);
  EXPECT_NEAR(m.mean, 2.0, 0.01);
  EXPECT_NEAR(std::sqrt(m.var), 0.5, 0.01);
  for (float x : v) ASSERT_TRUE(std::isfinite(x));
  // About 68.3% within one standard deviation.
  int64_t within = 0;
  for (float x : v) within += std::fabs(x - 2.0f) < 0.5f;
  EXPECT_NEAR(static_cast<double>(within) / kSamples, 0.6827, 0.01);
}

TEST(GeneratorTest, BernoulliRate) {
  Generator g(5);
  const std::vector<float> v = g.Bernoulli({kSamples}, 0.3f).ToVector();
  double ones = 0;
  for (float x : v) {
    ASSERT_TRUE(x == 0.0f || x == 1.0f) << x;
    ones += x;
  }
  EXPECT_NEAR(ones / kSamples, 0.3, 0.01);
  for (float x : g.Bernoulli({1000}, 0.0f).ToVector()) ASSERT_EQ(x, 0.0f);
  for (float x : g.Bernoulli({1000}, 1.0f).ToVector()) ASSERT_EQ(x, 1.0f);
}

TEST(GeneratorTest, NextIndexIsInRangeAndUniform) {
  Generator g(12);
  std::vector<int64_t> counts(10, 0);
  for (int64_t i = 0; i < kSamples; ++i) {
    const int64_t r = g.NextIndex(10);
    ASSERT_GE(r, 0);
    ASSERT_LT(r, 10);
    ++counts[r];
  }
  for (int64_t c : counts) EXPECT_NEAR(c, kSamples / 10, 500);
  EXPECT_EQ(g.NextIndex(1), 0);
}

TEST(GeneratorTest, PermutationIsADeterministicPermutation) {
  const std::vector<int64_t> p = Generator(21).Permutation(1000);
  ASSERT_EQ(p.size(), 1000u);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> iota(1000);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(sorted, iota);
  EXPECT_NE(p, iota);  // shuffled
  int fixed_points = 0;
  for (int64_t i = 0; i < 1000; ++i) fixed_points += p[i] == i;
  EXPECT_LT(fixed_points, 10);  // about 1 expected
  EXPECT_EQ(Generator(21).Permutation(1000), p);

  EXPECT_TRUE(Generator(1).Permutation(0).empty());
  EXPECT_THAT(Generator(1).Permutation(1), ElementsAre(0));
}

TEST(GeneratorTest, PermutationPositionsAreUniform) {
  // Each of 4 values lands in position 0 about 1/4 of the time.
  Generator g(30);
  std::vector<int> first(4, 0);
  for (int i = 0; i < 20000; ++i) ++first[g.Permutation(4)[0]];
  for (int c : first) EXPECT_NEAR(c, 5000, 300);
}

TEST(DefaultGeneratorTest, ManualSeedResetsTheDefaultGenerator) {
  ManualSeed(123);
  const std::vector<float> u1 = Uniform({50}, -1, 1).ToVector();
  const std::vector<float> n1 = Normal({50}, 0, 1).ToVector();
  ManualSeed(123);
  EXPECT_EQ(Uniform({50}, -1, 1).ToVector(), u1);
  EXPECT_EQ(Normal({50}, 0, 1).ToVector(), n1);

  // The shorthands draw from DefaultGenerator(), which equals a fresh
  // Generator with the same seed.
  Generator g(123);
  EXPECT_EQ(g.Uniform({50}, -1, 1).ToVector(), u1);
  EXPECT_EQ(g.Normal({50}, 0, 1).ToVector(), n1);

  ManualSeed(124);
  EXPECT_NE(Uniform({50}, -1, 1).ToVector(), u1);
  EXPECT_EQ(&DefaultGenerator(), &DefaultGenerator());
}

TEST(DefaultGeneratorTest, ShorthandShapes) {
  ManualSeed(0);
  const Tensor n = Normal({2, 3, 4}, 1, 2);
  EXPECT_EQ(n.shape(), Shape({2, 3, 4}));
  EXPECT_TRUE(n.is_contiguous());
  EXPECT_EQ(Uniform({0}, 0, 1).numel(), 0);
}

class RandomDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(RandomDeathTest, NextIndexOfZero) {
  Generator g(1);
  EXPECT_DEATH(g.NextIndex(0), "NextIndex\\(0\\)");
}

}  // namespace
}  // namespace dive
