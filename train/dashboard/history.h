// File: train/dashboard/history.h
// -----------------------------------------------------------------------------
//
// The dashboard's per-step history in bounded memory, however long the run:
// every step of the latest `recent` steps and, before them, buckets of
// consecutive steps each reduced to its mean loss and accuracy and the range
// of its losses. When the buckets would pass `max_buckets`, neighbours merge
// in pairs and the bucket width doubles, so the older steps always span at
// most `max_buckets` evenly wide buckets (at 1M steps with the defaults:
// 2,048 steps, and 1,024 buckets of 512 or 1,024 steps).
//
// Example:
//
//   StepHistory history;
//   history.Add({.step = 1, .loss = 2.3, .accuracy = 0.1, .lr = 0.9});
//   for (const StepBucket& b : history.buckets()) ...  // the oldest first
//   std::vector<StepPoint> latest = history.RecentAfter(since_step);
//
// Not thread-safe: the dashboard guards it with its mutex.

#ifndef TRAIN_DASHBOARD_HISTORY_H_
#define TRAIN_DASHBOARD_HISTORY_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dive::train {

// One training step's numbers.
struct StepPoint {
  int64_t step = 0;  // the global step, increasing from one Add to the next
  double loss = 0;
  double accuracy = 0;
  double lr = 0;
};

// Consecutive steps first_step..last_step (count of them), reduced.
struct StepBucket {
  int64_t first_step = 0;
  int64_t last_step = 0;
  int64_t count = 0;
  double loss_sum = 0;  // NaN once a step's loss was (a diverged run)
  double accuracy_sum = 0;
  double loss_min = 0;  // of the losses that are not NaN (NaN if none is)
  double loss_max = 0;
  double lr = 0;  // of the last step

  double mean_loss() const { return loss_sum / count; }
  double mean_accuracy() const { return accuracy_sum / count; }
};

class StepHistory {
 public:
  static constexpr size_t kDefaultRecent = 2048;
  static constexpr size_t kDefaultMaxBuckets = 1024;

  // `recent` >= 1 steps kept whole; `max_buckets` >= 2 for the older ones.
  explicit StepHistory(size_t recent = kDefaultRecent,
                       size_t max_buckets = kDefaultMaxBuckets);

  // Appends a step (O(1) amortized: a merge of all buckets, O(max_buckets),
  // happens once every max_buckets / 2 buckets).
  void Add(const StepPoint& point);

  // The latest steps whose step is greater than `after_step`, oldest first.
  std::vector<StepPoint> RecentAfter(int64_t after_step) const;
  // The step of the oldest of the latest steps (-1 while there is none):
  // steps before it are only in buckets().
  int64_t first_recent_step() const;
  const std::vector<StepBucket>& buckets() const { return buckets_; }
  // The steps that were added, in all.
  int64_t size() const { return size_; }

 private:
  // Adds the step that leaves the recent window to the buckets.
  void Fold(const StepPoint& point);

  const size_t max_buckets_;
  // The latest steps in a ring of recent_capacity slots; oldest at head_.
  std::vector<StepPoint> ring_;
  size_t head_ = 0;
  size_t recent_count_ = 0;
  std::vector<StepBucket> buckets_;
  int64_t bucket_width_ = 1;  // steps per (full) bucket
  int64_t size_ = 0;
};

}  // namespace dive::train

#endif  // TRAIN_DASHBOARD_HISTORY_H_
