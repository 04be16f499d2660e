#include "cheatsheet/softmax_regression.h"

#include <cmath>
#include <vector>

#include "cheatsheet/common.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dive::cheatsheet {
namespace {

using ::testing::FloatNear;
using ::testing::Pointwise;

TEST(SoftmaxRegressionTest, SoftmaxOfRowByHand) {
  // e^1, e^2, e^3 over their sum 30.1929.
  EXPECT_THAT(SoftmaxOfRow({1, 2, 3}),
              Pointwise(FloatNear(1e-6f), {0.0900306f, 0.2447285f, 0.6652410f}));
  // Adding a constant to every logit changes nothing.
  EXPECT_THAT(SoftmaxOfRow({11, 12, 13}),
              Pointwise(FloatNear(1e-6f), SoftmaxOfRow({1, 2, 3})));
}

TEST(SoftmaxRegressionTest, SingleExampleAndBatchGiveTheSameYHat) {
  const SoftmaxRegressionSheet s = RunSoftmaxRegression();
  EXPECT_LT(MaxAbsDiff(s.y_hat_single, s.y_hat_batch), 1e-6f);
  // Each row is a distribution.
  for (int64_t i = 0; i < s.y_hat_batch.dim(0); ++i) {
    float row = 0;
    for (int64_t c = 0; c < s.y_hat_batch.dim(1); ++c) {
      const float p = s.y_hat_batch.at<float>({i, c});
      EXPECT_GT(p, 0.0f);
      row += p;
    }
    EXPECT_NEAR(row, 1.0f, 1e-6f);
  }
}

TEST(SoftmaxRegressionTest, CrossEntropyIsMinusLogOfTheTrueClass) {
  const SoftmaxRegressionSheet s = RunSoftmaxRegression();
  ASSERT_EQ(s.ce_by_formula.size(), 4u);
  const std::vector<int64_t> labels = s.labels.ToInt64Vector();
  for (size_t i = 0; i < labels.size(); ++i) {
    EXPECT_FLOAT_EQ(s.ce_by_formula[i],
                    -std::log(s.y_hat_single.at<float>(
                        {static_cast<int64_t>(i), labels[i]})));
  }
  EXPECT_NEAR(s.ce_mean_by_formula, s.ce_by_dive, 1e-5f);
  EXPECT_GT(s.ce_by_dive, 0.1f);  // a real loss, not a degenerate zero
}

TEST(SoftmaxRegressionTest, UpdateFormulaIsOneSgdStep) {
  const SoftmaxRegressionSheet s = RunSoftmaxRegression();
  EXPECT_LT(MaxAbsDiff(s.w_by_formula, s.w_by_sgd), 1e-6f);
  EXPECT_LT(MaxAbsDiff(s.b_by_formula, s.b_by_sgd), 1e-6f);
  // The step moved the parameters (a no-op would also "agree").
  EXPECT_GT(MaxAbsDiff(s.w_by_sgd, s.w), 1e-2f);
  EXPECT_GT(MaxAbsDiff(s.b_by_sgd, s.b), 1e-2f);
  // The bias update sums residuals that sum to zero over the classes.
  float db = 0;
  for (int64_t c = 0; c < s.b.dim(0); ++c) {
    db += s.b_by_sgd.at<float>({c}) - s.b.at<float>({c});
  }
  EXPECT_NEAR(db, 0.0f, 1e-6f);
}

}  // namespace
}  // namespace dive::cheatsheet
