#include "train/dashboard/history.h"

#include <algorithm>
#include <cmath>

namespace dive::train {
namespace {

StepBucket BucketOf(const StepPoint& p) {
  return {.first_step = p.step,
          .last_step = p.step,
          .count = 1,
          .loss_sum = p.loss,
          .accuracy_sum = p.accuracy,
          .loss_min = p.loss,
          .loss_max = p.loss,
          .lr = p.lr};
}

// Appends `later` (the steps right after `into`'s) to `into`. fmin and fmax
// return the other operand when one is NaN.
void Merge(StepBucket* into, const StepBucket& later) {
  into->last_step = later.last_step;
  into->count += later.count;
  into->loss_sum += later.loss_sum;
  into->accuracy_sum += later.accuracy_sum;
  into->loss_min = std::fmin(into->loss_min, later.loss_min);
  into->loss_max = std::fmax(into->loss_max, later.loss_max);
  into->lr = later.lr;
}

}  // namespace

StepHistory::StepHistory(size_t recent, size_t max_buckets)
    : max_buckets_(std::max<size_t>(max_buckets, 2)),
      ring_(std::max<size_t>(recent, 1)) {
  buckets_.reserve(max_buckets_);
}

void StepHistory::Add(const StepPoint& point) {
  ++size_;
  if (recent_count_ < ring_.size()) {
    ring_[(head_ + recent_count_++) % ring_.size()] = point;
    return;
  }
  Fold(ring_[head_]);
  ring_[head_] = point;
  head_ = (head_ + 1) % ring_.size();
}

void StepHistory::Fold(const StepPoint& point) {
  if (buckets_.size() == max_buckets_ &&
      buckets_.back().count == bucket_width_) {
    // Full: merge neighbours in pairs (an odd one out stays as it is).
    size_t kept = 0;
    for (size_t i = 0; i < buckets_.size(); i += 2, ++kept) {
      StepBucket merged = buckets_[i];
      if (i + 1 < buckets_.size()) Merge(&merged, buckets_[i + 1]);
      buckets_[kept] = merged;
    }
    buckets_.resize(kept);
    bucket_width_ *= 2;
  }
  if (!buckets_.empty() && buckets_.back().count < bucket_width_) {
    Merge(&buckets_.back(), BucketOf(point));
  } else {
    buckets_.push_back(BucketOf(point));
  }
}

std::vector<StepPoint> StepHistory::RecentAfter(int64_t after_step) const {
  // Steps increase around the ring from head_: binary search its order.
  const auto at = [this](size_t i) -> const StepPoint& {
    return ring_[(head_ + i) % ring_.size()];
  };
  size_t lo = 0, hi = recent_count_;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (at(mid).step > after_step) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  std::vector<StepPoint> out;
  out.reserve(recent_count_ - lo);
  for (size_t i = lo; i < recent_count_; ++i) out.push_back(at(i));
  return out;
}

int64_t StepHistory::first_recent_step() const {
  return recent_count_ == 0 ? -1 : ring_[head_].step;
}

}  // namespace dive::train
