#include "cheatsheet/weight_decay.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "cheatsheet/common.h"
#include "gtest/gtest.h"

namespace dive::cheatsheet {
namespace {

TEST(WeightDecayTest, UpdateFormulaIsSgdWithWeightDecayLambdaOverB) {
  const WeightDecayStep s = CheckWeightDecayStep();
  EXPECT_LT(MaxAbsDiff(s.w_by_formula, s.w_by_weight_decay), 1e-6f);
  EXPECT_LT(MaxAbsDiff(s.w_by_formula, s.w_by_penalty), 1e-6f);
  EXPECT_LT(MaxAbsDiff(s.b_by_formula, s.b_by_weight_decay), 1e-6f);
  EXPECT_LT(MaxAbsDiff(s.b_by_formula, s.b_by_penalty), 1e-6f);
  // The step is not a no-op. (The penalized loss's autograd path agreeing
  // shows the decay term is there: without it, it would differ by
  // eta * lambda / |B| * w = 0.06 w.)
  EXPECT_GT(MaxAbsDiff(s.w_by_formula, s.w), 1e-2f);
}

TEST(WeightDecayTest, WithoutDecayTheModelOverfits) {
  const WeightDecayRun r = TrainWeightDecay(0.0f);
  ASSERT_EQ(r.train_loss.size(), 100u);
  ASSERT_EQ(r.test_loss.size(), 100u);
  EXPECT_LT(r.train_loss.back(), 1e-6f);  // 20 examples, 201 parameters
  EXPECT_GT(r.test_loss.back(), 10.0f);
  EXPECT_GT(r.w_norm, 5.0f);  // the book: 15.1
}

TEST(WeightDecayTest, LambdaThreeKeepsWSmallAndTheTestLossLow) {
  const WeightDecayRun plain = TrainWeightDecay(0.0f);
  const WeightDecayRun decayed = TrainWeightDecay(3.0f);
  EXPECT_LT(decayed.w_norm, 0.1f);  // the book: 0.035
  EXPECT_LT(decayed.test_loss.back(), 0.1f);
  EXPECT_LT(decayed.test_loss.back(), plain.test_loss.back() / 100.0f);
  // The training loss no longer reaches zero: the penalty fights the fit.
  EXPECT_GT(decayed.train_loss.back(), plain.train_loss.back() * 100.0f);
  // Both runs start from the same w and data: the first epoch's losses are
  // of the same size (the decay only shrinks w a little in one epoch).
  EXPECT_GT(decayed.test_loss.front(), 10.0f);
  EXPECT_LT(decayed.test_loss[19], decayed.test_loss[0] / 100.0f);
}

TEST(WeightDecayTest, TableHasAnEpochPerLineAndFiveColumns) {
  const WeightDecayRun a = TrainWeightDecay(0.0f), b = TrainWeightDecay(3.0f);
  const std::vector<std::string> lines =
      absl::StrSplit(WeightDecayTable(a, b), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 101u);
  EXPECT_EQ(lines[0], "# epoch train(lambda=0) test(lambda=0) "
                      "train(lambda=3) test(lambda=3)");
  const std::vector<std::string> last = absl::StrSplit(lines[100], ' ');
  ASSERT_EQ(last.size(), 5u);
  EXPECT_EQ(last[0], "100");
  EXPECT_NEAR(std::stof(last[4]), b.test_loss.back(),
              1e-5f * b.test_loss.back());
}

}  // namespace
}  // namespace dive::cheatsheet
