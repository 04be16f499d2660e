#include "nn/init.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::nn {
namespace {

struct Moments {
  double mean, variance, max_abs;
};

Moments Measure(const Tensor& t) {
  const std::vector<float> v = t.ToVector();
  double sum = 0, sq = 0, max_abs = 0;
  for (float x : v) {
    sum += x;
    sq += static_cast<double>(x) * x;
    max_abs = std::max(max_abs, std::fabs(static_cast<double>(x)));
  }
  const double n = static_cast<double>(v.size());
  return {sum / n, sq / n - (sum / n) * (sum / n), max_abs};
}

TEST(InitTest, Fans) {
  const Fans linear = ComputeFans({256, 784});
  EXPECT_EQ(linear.fan_in, 784);
  EXPECT_EQ(linear.fan_out, 256);
  const Fans conv = ComputeFans({16, 6, 5, 3});
  EXPECT_EQ(conv.fan_in, 6 * 5 * 3);
  EXPECT_EQ(conv.fan_out, 16 * 5 * 3);
}

TEST(InitTest, XavierUniformBoundAndVariance) {
  ManualSeed(0);
  Tensor w = Tensor::Zeros({200, 300});
  XavierUniform(w);
  const double bound = std::sqrt(6.0 / 500.0);
  const Moments m = Measure(w);
  EXPECT_LE(m.max_abs, bound);
  EXPECT_GT(m.max_abs, 0.99 * bound);
  EXPECT_NEAR(m.mean, 0.0, 0.01 * bound);
  EXPECT_NEAR(m.variance, 2.0 / 500.0, 0.03 * 2.0 / 500.0);
}

TEST(InitTest, XavierGainScales) {
  ManualSeed(0);
  Tensor w = Tensor::Zeros({200, 300});
  XavierUniform(w, /*gain=*/2.0f);
  EXPECT_LE(Measure(w).max_abs, 2.0 * std::sqrt(6.0 / 500.0));
  EXPECT_GT(Measure(w).max_abs, 1.98 * std::sqrt(6.0 / 500.0));
}

TEST(InitTest, XavierNormalStd) {
  ManualSeed(0);
  Tensor w = Tensor::Zeros({64, 32, 3, 3});  // fans 288 and 576
  XavierNormal(w);
  EXPECT_NEAR(std::sqrt(Measure(w).variance), std::sqrt(2.0 / 864.0),
              0.02 * std::sqrt(2.0 / 864.0));
}

TEST(InitTest, KaimingNormalStd) {
  ManualSeed(0);
  Tensor w = Tensor::Zeros({256, 64, 3, 3});  // fan_in 576, fan_out 2304
  KaimingNormal(w);
  const Moments m = Measure(w);
  EXPECT_NEAR(m.mean, 0.0, 0.001);
  EXPECT_NEAR(std::sqrt(m.variance), std::sqrt(2.0 / 576.0),
              0.01 * std::sqrt(2.0 / 576.0));
  KaimingNormal(w, 0.0f, FanMode::kFanOut);
  EXPECT_NEAR(std::sqrt(Measure(w).variance), std::sqrt(2.0 / 2304.0),
              0.01 * std::sqrt(2.0 / 2304.0));
}

TEST(InitTest, KaimingUniformBound) {
  ManualSeed(0);
  Tensor w = Tensor::Zeros({128, 100});
  KaimingUniform(w);  // ReLU gain: bound sqrt(6 / fan_in)
  EXPECT_LE(Measure(w).max_abs, std::sqrt(6.0 / 100.0));
  EXPECT_GT(Measure(w).max_abs, 0.99 * std::sqrt(6.0 / 100.0));
  KaimingUniform(w, std::sqrt(5.0f));  // PyTorch's default: 1 / sqrt(fan_in)
  EXPECT_LE(Measure(w).max_abs, 0.1 + 1e-6);
  EXPECT_GT(Measure(w).max_abs, 0.099);
}

TEST(InitTest, DefaultLinearInitBound) {
  ManualSeed(0);
  Linear fc(400, 300);
  const double bound = 1.0 / std::sqrt(400.0);
  const Moments w = Measure(fc.weight().data());
  EXPECT_LE(w.max_abs, bound + 1e-7);
  EXPECT_GT(w.max_abs, 0.99 * bound);
  EXPECT_NEAR(w.variance, bound * bound / 3.0, 0.03 * bound * bound / 3.0);
  const Moments b = Measure(fc.bias().data());
  EXPECT_LE(b.max_abs, bound + 1e-7);
  EXPECT_GT(b.max_abs, 0.9 * bound);
}

TEST(InitTest, DefaultConv2dInitBound) {
  ManualSeed(0);
  Conv2d conv(16, 32, 3);
  const double bound = 1.0 / std::sqrt(16.0 * 9.0);
  EXPECT_LE(Measure(conv.weight().data()).max_abs, bound + 1e-7);
  EXPECT_GT(Measure(conv.weight().data()).max_abs, 0.99 * bound);
  EXPECT_LE(Measure(conv.bias().data()).max_abs, bound + 1e-7);
}

TEST(InitTest, SeedMakesInitReproducible) {
  ManualSeed(7);
  Linear a(10, 5);
  ManualSeed(7);
  Linear b(10, 5);
  EXPECT_EQ(a.weight().data().ToVector(), b.weight().data().ToVector());
  EXPECT_EQ(a.bias().data().ToVector(), b.bias().data().ToVector());
}

TEST(InitTest, SimpleFills) {
  ManualSeed(0);
  Tensor t = Tensor::Zeros({100, 100});
  NormalInit(t, 3.0f, 0.5f);
  EXPECT_NEAR(Measure(t).mean, 3.0, 0.02);
  EXPECT_NEAR(std::sqrt(Measure(t).variance), 0.5, 0.01);
  UniformInit(t, 1.0f, 2.0f);
  for (float x : t.ToVector()) {
    EXPECT_GE(x, 1.0f);
    EXPECT_LE(x, 2.0f);
  }
  ConstantInit(t, 0.25f);
  EXPECT_EQ(t.ToVector(), std::vector<float>(10000, 0.25f));
  ZerosInit(t);
  EXPECT_EQ(t.ToVector(), std::vector<float>(10000, 0.0f));
}

TEST(InitTest, WritesThroughSharedHandles) {
  Linear fc(3, 2);
  ConstantInit(fc.weight().data(), 1.5f);  // the parameter's own storage
  EXPECT_EQ(fc.Parameters()[0].data().ToVector(),
            std::vector<float>(6, 1.5f));
}

TEST(InitDeathTest, FansNeedRankTwo) {
  EXPECT_DEATH(ComputeFans({5}), "rank >= 2 .*got \\[5\\]");
  Tensor bias = Tensor::Zeros({5});
  EXPECT_DEATH(XavierUniform(bias), "got \\[5\\]");
}

}  // namespace
}  // namespace dive::nn
