#include "nn/batch_norm.h"

#include <cmath>
#include <vector>

#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nn/testing.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::nn {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::Pointwise;

constexpr float kEps = 1e-5f;

TEST(BatchNormTest, ParametersAndBuffers) {
  BatchNorm2d bn(3);
  EXPECT_EQ(bn.Describe(), "BatchNorm2d(3, eps=1e-05, momentum=0.1)");
  EXPECT_EQ(bn.weight().data().ToVector(), std::vector<float>(3, 1.0f));
  EXPECT_EQ(bn.bias().data().ToVector(), std::vector<float>(3, 0.0f));
  EXPECT_EQ(bn.running_mean().ToVector(), std::vector<float>(3, 0.0f));
  EXPECT_EQ(bn.running_var().ToVector(), std::vector<float>(3, 1.0f));
  EXPECT_EQ(bn.num_batches_tracked(), 0);
  std::vector<std::string> buffers;
  for (const auto& [name, t] : bn.NamedBuffers()) buffers.push_back(name);
  EXPECT_THAT(buffers,
              ElementsAre("running_mean", "running_var", "num_batches_tracked"));
  EXPECT_EQ(bn.StateDict().size(), 5u);
  EXPECT_EQ(bn.NumParameters(), 6);
}

TEST(BatchNormTest, Train1dNormalizesAndUpdatesRunningStats) {
  BatchNorm1d bn(2);
  AssignValues(bn.weight().data(), {2, -1});
  AssignValues(bn.bias().data(), {0.5f, 1});
  // Channel 0: 1 2 3 4 (mean 2.5, biased var 1.25, unbiased 5/3).
  // Channel 1: 2 4 6 8 (mean 5, biased var 5, unbiased 20/3).
  const Tensor x = Tensor::FromVector({1, 2, 2, 4, 3, 6, 4, 8}, {4, 2});
  const autograd::Variable y = bn(autograd::Variable(x));
  std::vector<float> want;
  for (int i = 0; i < 4; ++i) {
    want.push_back(2 * (i + 1 - 2.5f) / std::sqrt(1.25f + kEps) + 0.5f);
    want.push_back(-1 * (2 * (i + 1) - 5.0f) / std::sqrt(5.0f + kEps) + 1);
  }
  EXPECT_THAT(y.data().ToVector(), Pointwise(FloatNear(1e-5), want));
  EXPECT_THAT(bn.running_mean().ToVector(),
              Pointwise(FloatNear(1e-6), std::vector<float>{0.25f, 0.5f}));
  EXPECT_THAT(bn.running_var().ToVector(),
              Pointwise(FloatNear(1e-6),
                        std::vector<float>{0.9f + 0.1f * 5 / 3,
                                           0.9f + 0.1f * 20 / 3}));
  EXPECT_EQ(bn.num_batches_tracked(), 1);
  bn(autograd::Variable(x));
  EXPECT_EQ(bn.num_batches_tracked(), 2);
  EXPECT_NEAR(bn.running_mean().at<float>({0}), 0.9f * 0.25f + 0.25f, 1e-6);
}

TEST(BatchNormTest, Train2dStatisticsPerChannel) {
  ManualSeed(6);
  BatchNorm2d bn(3);
  const Tensor x = Normal({4, 3, 2, 5}, 1, 2);
  const Tensor y = bn(autograd::Variable(x)).data();
  for (int64_t c = 0; c < 3; ++c) {
    double sum = 0, sq = 0;
    const int m = 4 * 2 * 5;
    for (int64_t n = 0; n < 4; ++n) {
      for (int64_t h = 0; h < 2; ++h) {
        for (int64_t w = 0; w < 5; ++w) sum += x.at<float>({n, c, h, w});
      }
    }
    const double mean = sum / m;
    for (int64_t n = 0; n < 4; ++n) {
      for (int64_t h = 0; h < 2; ++h) {
        for (int64_t w = 0; w < 5; ++w) {
          const double d = x.at<float>({n, c, h, w}) - mean;
          sq += d * d;
        }
      }
    }
    const double var = sq / m;  // biased
    for (int64_t n = 0; n < 4; ++n) {
      for (int64_t h = 0; h < 2; ++h) {
        for (int64_t w = 0; w < 5; ++w) {
          EXPECT_NEAR(y.at<float>({n, c, h, w}),
                      (x.at<float>({n, c, h, w}) - mean) / std::sqrt(var + kEps),
                      1e-4);
        }
      }
    }
    EXPECT_NEAR(bn.running_mean().at<float>({c}), 0.1 * mean, 1e-5);
    EXPECT_NEAR(bn.running_var().at<float>({c}),
                0.9 + 0.1 * var * m / (m - 1), 1e-5);
  }
}

TEST(BatchNormTest, EvalUsesRunningStats) {
  BatchNorm2d bn(BatchNormOptions(2).set_eps(1e-3f).set_momentum(0.5f));
  EXPECT_EQ(bn.Describe(), "BatchNorm2d(2, eps=0.001, momentum=0.5)");
  AssignValues(bn.running_mean(), {1, -2});
  AssignValues(bn.running_var(), {4, 0.25f});
  AssignValues(bn.weight().data(), {3, 1});
  AssignValues(bn.bias().data(), {0, 10});
  bn.Eval();
  const Tensor x = Tensor::FromVector({5, 3, -2, 0}, {1, 2, 2, 1});
  const autograd::Variable y = bn(autograd::Variable(x));
  const float s0 = 3 / std::sqrt(4 + 1e-3f), s1 = 1 / std::sqrt(0.25f + 1e-3f);
  EXPECT_THAT(y.data().ToVector(),
              Pointwise(FloatNear(1e-5),
                        std::vector<float>{s0 * 4, s0 * 2, 10, s1 * 2 + 10}));
  // Evaluation changes no statistics.
  EXPECT_EQ(bn.num_batches_tracked(), 0);
  EXPECT_THAT(bn.running_mean().ToVector(), ElementsAre(1, -2));
  EXPECT_THAT(bn.running_var().ToVector(), ElementsAre(4, 0.25f));
}

TEST(BatchNormTest, MomentumOption) {
  BatchNorm1d bn(BatchNormOptions(1).set_momentum(0.5f));
  bn(autograd::Variable(Tensor::FromVector({2, 4}, {2, 1})));
  EXPECT_NEAR(bn.running_mean().at<float>({0}), 1.5f, 1e-6);
  EXPECT_NEAR(bn.running_var().at<float>({0}), 0.5f + 0.5f * 2, 1e-6);
}

TEST(BatchNormTest, GradCheck) {
  ManualSeed(8);
  BatchNorm1d bn1(3);
  AssignValues(bn1.weight().data(), {1.5f, -0.5f, 2});
  AssignValues(bn1.bias().data(), {0.1f, 0.2f, -0.3f});
  absl::Status s = GradCheckModule(bn1, Normal({5, 3}, 0, 2));
  EXPECT_TRUE(s.ok()) << s;
  BatchNorm2d bn2(2);
  s = GradCheckModule(bn2, Normal({3, 2, 2, 3}, 1, 2));
  EXPECT_TRUE(s.ok()) << s;
  bn2.Eval();
  AssignValues(bn2.running_var(), {0.5f, 2});
  s = GradCheckModule(bn2, Normal({2, 2, 2, 2}, 0, 1));
  EXPECT_TRUE(s.ok()) << s;
}

TEST(BatchNormDeathTest, WrongInput) {
  BatchNorm2d bn2(6);
  EXPECT_DEATH(bn2(autograd::Variable(Tensor::Zeros({8, 6}))),
               "BatchNorm2d\\(6, eps=1e-05, momentum=0.1\\): expected input "
               "\\[N, 6, H, W\\], got \\[8, 6\\]");
  EXPECT_DEATH(bn2(autograd::Variable(Tensor::Zeros({8, 3, 4, 4}))),
               "expected input \\[N, 6, H, W\\], got \\[8, 3, 4, 4\\]");
  BatchNorm1d bn1(4);
  EXPECT_DEATH(bn1(autograd::Variable(Tensor::Zeros({8, 4, 2, 2}))),
               "BatchNorm1d\\(4, .*\\): expected input \\[N, 4\\], got "
               "\\[8, 4, 2, 2\\]");
  EXPECT_DEATH(bn1(autograd::Variable(Tensor::Zeros({1, 4}))),
               "more than 1 value per channel when training, got input "
               "\\[1, 4\\]");
  bn1.Eval();
  EXPECT_EQ(bn1(autograd::Variable(Tensor::Zeros({1, 4}))).shape(),
            Shape({1, 4}));
}

}  // namespace
}  // namespace dive::nn
