#include "train/dashboard/history.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace dive::train {
namespace {

StepPoint Point(int64_t step) {
  return {.step = step,
          .loss = static_cast<double>(step),
          .accuracy = 0.5,
          .lr = 0.1 * step};
}

TEST(StepHistoryTest, KeepsTheLatestStepsWhole) {
  StepHistory history(/*recent=*/4, /*max_buckets=*/8);
  EXPECT_EQ(history.first_recent_step(), -1);
  EXPECT_TRUE(history.RecentAfter(-1).empty());
  for (int64_t step = 1; step <= 3; ++step) history.Add(Point(step));
  EXPECT_EQ(history.first_recent_step(), 1);
  EXPECT_EQ(history.RecentAfter(-1).size(), 3u);
  EXPECT_TRUE(history.buckets().empty());

  for (int64_t step = 4; step <= 10; ++step) history.Add(Point(step));
  EXPECT_EQ(history.size(), 10);
  EXPECT_EQ(history.first_recent_step(), 7);
  const std::vector<StepPoint> latest = history.RecentAfter(8);
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest[0].step, 9);
  EXPECT_EQ(latest[1].step, 10);
  EXPECT_DOUBLE_EQ(latest[1].lr, 1.0);
  EXPECT_EQ(history.RecentAfter(-1).size(), 4u);
  EXPECT_TRUE(history.RecentAfter(10).empty());
  // Steps 1..6 left the window, one bucket each so far.
  ASSERT_EQ(history.buckets().size(), 6u);
  EXPECT_EQ(history.buckets()[5].first_step, 6);
}

// A million steps: 2,048 whole, the rest in at most 1,024 buckets of equal
// width (but the last), covering every step once, with their means.
TEST(StepHistoryTest, BoundsAMillionSteps) {
  StepHistory history;
  constexpr int64_t kSteps = 1000000;
  for (int64_t step = 1; step <= kSteps; ++step) history.Add(Point(step));
  EXPECT_EQ(history.RecentAfter(-1).size(), StepHistory::kDefaultRecent);
  const std::vector<StepBucket>& buckets = history.buckets();
  ASSERT_LE(buckets.size(), StepHistory::kDefaultMaxBuckets);
  EXPECT_GT(buckets.size(), StepHistory::kDefaultMaxBuckets / 2);
  int64_t next = 1;
  for (size_t i = 0; i < buckets.size(); ++i) {
    const StepBucket& b = buckets[i];
    ASSERT_EQ(b.first_step, next) << "bucket " << i;
    ASSERT_EQ(b.count, b.last_step - b.first_step + 1);
    if (i + 1 < buckets.size()) {
      ASSERT_EQ(b.count, buckets[0].count);
    }
    // loss = step: the mean is the middle step, the range its ends.
    EXPECT_DOUBLE_EQ(b.mean_loss(), (b.first_step + b.last_step) / 2.0);
    EXPECT_EQ(b.loss_min, b.first_step);
    EXPECT_EQ(b.loss_max, b.last_step);
    EXPECT_DOUBLE_EQ(b.mean_accuracy(), 0.5);
    EXPECT_DOUBLE_EQ(b.lr, 0.1 * b.last_step);
    next = b.last_step + 1;
  }
  EXPECT_EQ(next, history.first_recent_step());
}

TEST(StepHistoryTest, ABucketWithADivergedStepHasNoMeanButARange) {
  StepHistory history(/*recent=*/1, /*max_buckets=*/2);
  history.Add({.step = 1, .loss = std::numeric_limits<double>::quiet_NaN()});
  history.Add({.step = 2, .loss = 3});
  history.Add({.step = 3, .loss = 1});
  history.Add({.step = 4, .loss = 2});
  history.Add({.step = 5, .loss = 0});
  // Steps 1..4 in buckets of two: {1, 2} and {3, 4}.
  ASSERT_EQ(history.buckets().size(), 2u);
  const StepBucket& first = history.buckets()[0];
  EXPECT_EQ(first.count, 2);
  EXPECT_TRUE(std::isnan(first.mean_loss()));
  EXPECT_EQ(first.loss_min, 3);
  EXPECT_EQ(first.loss_max, 3);
  EXPECT_DOUBLE_EQ(history.buckets()[1].mean_loss(), 1.5);
}

}  // namespace
}  // namespace dive::train
