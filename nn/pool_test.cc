#include "nn/pool.h"

#include <vector>

#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nn/testing.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::nn {
namespace {

using ::testing::FloatNear;
using ::testing::Pointwise;

Tensor Arange(const Shape& shape) {
  return Tensor::Arange(shape.numel()).View(shape);
}

// Distinct values at least 0.1 apart in random order, so that the finite
// differences (step 0.01) never change which element is the maximum.
Tensor Shuffled(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  std::vector<float> values;
  for (int64_t i : gen.Permutation(shape.numel())) values.push_back(0.1f * i);
  return Tensor::FromVector(values, shape);
}

void ExpectGradientsOk(Module& m, const Tensor& x) {
  const absl::Status s = GradCheckModule(m, x);
  EXPECT_TRUE(s.ok()) << m.Describe() << ": " << s;
}

std::vector<float> Values(Module& m, const Tensor& x) {
  return m(autograd::Variable(x)).data().ToVector();
}

TEST(MaxPool2dTest, TwoByTwo) {
  MaxPool2d pool(2);
  EXPECT_EQ(pool.Describe(), "MaxPool2d(kernel=2x2, stride=2, padding=0)");
  const Tensor x = Tensor::FromVector(
      {1, 5, 2, 0, 3, 4, 8, 7, -1, -2, 0, 0, -3, -4, 9, 1}, {1, 1, 4, 4});
  EXPECT_EQ(pool(autograd::Variable(x)).shape(), Shape({1, 1, 2, 2}));
  EXPECT_EQ(Values(pool, x), (std::vector<float>{5, 8, -1, 9}));
}

TEST(MaxPool2dTest, OverlappingWithPadding) {
  MaxPool2d pool(3, /*stride=*/2, /*padding=*/1);
  // 0..15 in a 4x4 image; windows centred on (0,0), (0,2), (2,0), (2,2).
  const Tensor x = Arange({1, 1, 4, 4});
  EXPECT_EQ(Values(pool, x), (std::vector<float>{5, 7, 13, 15}));
}

TEST(AvgPool2dTest, TwoByTwo) {
  AvgPool2d pool(2);
  const Tensor x = Arange({1, 2, 2, 4});
  // Channel 0: [[0 1 2 3], [4 5 6 7]]; channel 1 adds 8.
  EXPECT_THAT(Values(pool, x),
              Pointwise(FloatNear(1e-6), std::vector<float>{2.5f, 4.5f, 10.5f,
                                                            12.5f}));
}

TEST(AvgPool2dTest, CountIncludePad) {
  const Tensor x = Tensor::FromVector({1, 2, 3, 4, 5, 6, 7, 8, 9},
                                      {1, 1, 3, 3});
  AvgPool2d include(3, 1, 1);
  AvgPool2d exclude(3, 1, 1, /*count_include_pad=*/false);
  EXPECT_EQ(exclude.Describe(),
            "AvgPool2d(kernel=3x3, stride=1, padding=1, "
            "count_include_pad=false)");
  const std::vector<float> in = Values(include, x), ex = Values(exclude, x);
  // Corner: window {1, 2, 4, 5} = 12 over 9 or over 4 elements.
  EXPECT_NEAR(in[0], 12.0f / 9, 1e-6);
  EXPECT_NEAR(ex[0], 3.0f, 1e-6);
  // Edge: {1, 2, 3, 4, 5, 6} = 21 over 9 or 6.
  EXPECT_NEAR(in[1], 21.0f / 9, 1e-6);
  EXPECT_NEAR(ex[1], 3.5f, 1e-6);
  // Centre: no padding either way.
  EXPECT_NEAR(in[4], 5.0f, 1e-6);
  EXPECT_NEAR(ex[4], 5.0f, 1e-6);
}

TEST(AdaptiveAvgPool2dTest, DividingSizes) {
  AdaptiveAvgPool2d pool(2);
  EXPECT_EQ(pool.Describe(), "AdaptiveAvgPool2d(2x2)");
  EXPECT_THAT(Values(pool, Arange({1, 1, 4, 4})),
              Pointwise(FloatNear(1e-6), std::vector<float>{2.5f, 4.5f, 10.5f,
                                                            12.5f}));
}

TEST(AdaptiveAvgPool2dTest, OverlappingWindows) {
  // 3 -> 2: windows [0, 2) and [1, 3) on both axes.
  AdaptiveAvgPool2d pool(2);
  const Tensor x = Tensor::FromVector({1, 2, 3, 4, 5, 6, 7, 8, 9},
                                      {1, 1, 3, 3});
  EXPECT_THAT(Values(pool, x),
              Pointwise(FloatNear(1e-5), std::vector<float>{3, 4, 6, 7}));
}

TEST(AdaptiveAvgPool2dTest, MatchesWindowFormula) {
  ManualSeed(2);
  const int64_t h = 5, w = 7, oh = 3, ow = 4;
  const Tensor x = Normal({2, 3, h, w}, 0, 1);
  AdaptiveAvgPool2d pool(oh, ow);
  const autograd::Variable y = pool(autograd::Variable(x));
  ASSERT_EQ(y.shape(), Shape({2, 3, oh, ow}));
  for (int64_t n = 0; n < 2; ++n) {
    for (int64_t c = 0; c < 3; ++c) {
      for (int64_t i = 0; i < oh; ++i) {
        for (int64_t j = 0; j < ow; ++j) {
          const int64_t h0 = i * h / oh, h1 = ((i + 1) * h + oh - 1) / oh;
          const int64_t w0 = j * w / ow, w1 = ((j + 1) * w + ow - 1) / ow;
          double sum = 0;
          for (int64_t a = h0; a < h1; ++a) {
            for (int64_t b = w0; b < w1; ++b) sum += x.at<float>({n, c, a, b});
          }
          EXPECT_NEAR(y.data().at<float>({n, c, i, j}),
                      sum / ((h1 - h0) * (w1 - w0)), 1e-5);
        }
      }
    }
  }
}

TEST(GlobalAvgPool2dTest, MeanPerChannel) {
  GlobalAvgPool2d pool;
  const Tensor x = Arange({2, 2, 2, 2});
  const autograd::Variable y = pool(autograd::Variable(x));
  EXPECT_EQ(y.shape(), Shape({2, 2, 1, 1}));
  EXPECT_THAT(y.data().ToVector(),
              Pointwise(FloatNear(1e-6), std::vector<float>{1.5f, 5.5f, 9.5f,
                                                            13.5f}));
  AdaptiveAvgPool2d one(1);
  EXPECT_THAT(Values(one, x), Pointwise(FloatNear(1e-6), y.data().ToVector()));
}

TEST(PoolTest, GradCheck) {
  MaxPool2d max(2);
  ExpectGradientsOk(max, Shuffled({2, 2, 4, 4}, 1));
  MaxPool2d max_pad(3, 2, 1);
  ExpectGradientsOk(max_pad, Shuffled({1, 2, 5, 5}, 2));
  AvgPool2d avg(3, 2, 1);
  ExpectGradientsOk(avg, Normal({2, 2, 5, 5}, 0, 1));
  AvgPool2d avg_ex(3, 1, 1, /*count_include_pad=*/false);
  ExpectGradientsOk(avg_ex, Normal({1, 2, 4, 4}, 0, 1));
  AdaptiveAvgPool2d adaptive(3, 2);
  ExpectGradientsOk(adaptive, Normal({2, 2, 5, 5}, 0, 1));
  GlobalAvgPool2d global;
  ExpectGradientsOk(global, Normal({2, 3, 3, 3}, 0, 1));
}

TEST(PoolDeathTest, WrongInput) {
  MaxPool2d pool(2);
  EXPECT_DEATH(pool(autograd::Variable(Tensor::Zeros({4, 4}))),
               "MaxPool2d\\(kernel=2x2, stride=2, padding=0\\): expected "
               "input \\[N, C, H, W\\], got \\[4, 4\\]");
  MaxPool2d big(5);
  EXPECT_DEATH(big(autograd::Variable(Tensor::Zeros({1, 1, 4, 4}))),
               "input \\[1, 1, 4, 4\\] is smaller than the window");
  EXPECT_DEATH(MaxPool2d(2, 2, 2), "padding must be between 0 and half");
  GlobalAvgPool2d global;
  EXPECT_DEATH(global(autograd::Variable(Tensor::Zeros({2, 3}))),
               "GlobalAvgPool2d: expected input \\[N, C, H, W\\], got "
               "\\[2, 3\\]");
  AdaptiveAvgPool2d adaptive(2);
  EXPECT_DEATH(adaptive(autograd::Variable(Tensor::Zeros({2, 3, 4}))),
               "AdaptiveAvgPool2d\\(2x2\\): expected input");
}

}  // namespace
}  // namespace dive::nn
