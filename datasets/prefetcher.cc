#include "datasets/prefetcher.h"

#include <omp.h>

#include <utility>

#include "glog/logging.h"

namespace dive::data {

Prefetcher::Prefetcher(int num_threads, size_t depth)
    : num_threads_(num_threads), depth_(depth) {
  CHECK_GT(depth, 0u) << "Prefetcher: depth must be positive";
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Prefetcher::Restart(Produce produce, int64_t first, int64_t end) {
  CHECK_LE(first, end) << "Prefetcher::Restart: first " << first << " past end "
                       << end;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++generation_;
    produce_ = std::move(produce);
    build_next_ = take_next_ = first;
    end_ = end;
    queue_.clear();
    if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
  }
  cv_.notify_all();
}

Batch Prefetcher::Next() {
  Batch batch;
  {
    std::unique_lock<std::mutex> lock(mu_);
    CHECK_LT(take_next_, end_) << "Prefetcher::Next: the run has ended";
    cv_.wait(lock, [this] { return !queue_.empty(); });
    batch = std::move(queue_.front());
    queue_.pop_front();
    ++take_next_;
  }
  cv_.notify_all();
  return batch;
}

void Prefetcher::Loop() {
  if (num_threads_ > 0) omp_set_num_threads(num_threads_);
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] {
      return shutdown_ || (build_next_ < end_ && queue_.size() < depth_);
    });
    if (shutdown_) return;
    const int64_t generation = generation_;
    const Produce produce = produce_;
    const int64_t index = build_next_++;
    lock.unlock();
    Batch batch = produce(index);
    lock.lock();
    if (generation == generation_) {
      queue_.push_back(std::move(batch));
      cv_.notify_all();
    }
  }
}

}  // namespace dive::data
