#include "cheatsheet/batch_norm.h"

#include <cmath>
#include <vector>

#include "cheatsheet/common.h"
#include "gtest/gtest.h"

namespace dive::cheatsheet {
namespace {

TEST(BatchNormTest, ChannelStatsByHand) {
  // Two examples, one feature: values 1 and 3 -> mean 2, biased variance 1,
  // unbiased 2.
  const ChannelStats s =
      ComputeChannelStats(Tensor::FromVector({1, 10, 3, 20}, {2, 2}));
  EXPECT_EQ(s.m, 2);
  EXPECT_FLOAT_EQ(s.mean[0], 2.0f);
  EXPECT_FLOAT_EQ(s.var_biased[0], 1.0f);
  EXPECT_FLOAT_EQ(s.var_unbiased[0], 2.0f);
  EXPECT_FLOAT_EQ(s.mean[1], 15.0f);
  EXPECT_FLOAT_EQ(s.var_biased[1], 25.0f);
}

class BatchNormCaseTest : public ::testing::TestWithParam<bool> {
 protected:
  BatchNormCase Case() const {
    return GetParam() ? ConvolutionCase() : FullyConnectedCase();
  }
};

TEST_P(BatchNormCaseTest, TrainingFormulaWithBiasedVarianceIsDives) {
  const BatchNormCase c = Case();
  EXPECT_EQ(c.stats.m, GetParam() ? 40 : 4);
  EXPECT_LT(MaxAbsDiff(c.y_by_hand, c.y_by_dive), 1e-5f);
  // The document's 1/(m - 1) variance is not what is used to normalize.
  EXPECT_GT(MaxAbsDiff(c.y_with_unbiased_var, c.y_by_dive),
            GetParam() ? 1e-3f : 1e-2f);
  // The normalized outputs have mean beta and (biased) std |gamma| per
  // channel.
  const ChannelStats y = ComputeChannelStats(c.y_by_dive);
  for (int k = 0; k < 3; ++k) {
    EXPECT_NEAR(y.mean[k], c.beta[k], 1e-5f);
    EXPECT_NEAR(std::sqrt(y.var_biased[k]), std::fabs(c.gamma[k]), 1e-3f);
  }
}

TEST_P(BatchNormCaseTest, MovingAveragesUseTheUnbiasedVariance) {
  const BatchNormCase c = Case();
  EXPECT_EQ(c.batches_tracked, 2);
  EXPECT_LT(MaxAbsDiff(c.running_mean_by_formula, c.running_mean_by_dive),
            1e-5f);
  EXPECT_LT(MaxAbsDiff(c.running_var_by_formula, c.running_var_by_dive),
            1e-5f);
  // They moved from their initial 0 and 1.
  EXPECT_GT(MaxAbsDiff(c.running_mean_by_dive, {0, 0, 0}), 0.1f);
  EXPECT_GT(MaxAbsDiff(c.running_var_by_dive, {1, 1, 1}), 0.1f);
}

TEST_P(BatchNormCaseTest, PredictionUsesTheMovingAverages) {
  const BatchNormCase c = Case();
  EXPECT_LT(MaxAbsDiff(c.predict_by_hand, c.predict_by_dive), 1e-5f);
  // Not the test batch's own statistics.
  const ChannelStats s = ComputeChannelStats(c.x_test);
  const Tensor with_batch_stats = NormalizeByHand(
      c.x_test, s.mean, s.var_biased, c.gamma, c.beta, c.eps);
  EXPECT_GT(MaxAbsDiff(with_batch_stats, c.predict_by_dive), 0.1f);
}

TEST_P(BatchNormCaseTest, GammaAndBetaCanUndoTheNormalization) {
  const BatchNormCase c = Case();
  EXPECT_LT(MaxAbsDiff(c.y_identity, c.x), 1e-4f);
}

INSTANTIATE_TEST_SUITE_P(FullyConnectedAndConvolution, BatchNormCaseTest,
                         ::testing::Bool());

}  // namespace
}  // namespace dive::cheatsheet
