// File: datasets/prefetcher.h
// -----------------------------------------------------------------------------
//
// `Prefetcher` builds batches ahead of their consumer on one background
// thread, like the worker of PyTorch's `DataLoader` (with num_workers=1) or
// Flashlight's `PrefetchDataset`. A run is the batches `produce(i)` for i in
// [first, end), handed out in order by `Next`; `Restart` begins another run
// and discards what the old one had queued or was building. The thread lives
// as long as the prefetcher (so the OpenMP pool of its transforms is made
// once) and stops after at most the batch it is building.
//
// Example:
//
//   dive::data::Prefetcher prefetcher(/*num_threads=*/1);
//   prefetcher.Restart([&](int64_t i) { return MakeBatch(i); }, 0, 100);
//   for (int64_t i = 0; i < 100; ++i) dive::data::Batch b = prefetcher.Next();

#ifndef DATASETS_PREFETCHER_H_
#define DATASETS_PREFETCHER_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "datasets/dataset.h"

namespace dive::data {

class Prefetcher {
 public:
  using Produce = std::function<Batch(int64_t index)>;

  // `num_threads`: OpenMP threads of the background thread (0: OpenMP's
  // default); `depth`: batches built ahead at most.
  explicit Prefetcher(int num_threads = 0, size_t depth = 2);
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;
  // Stops the thread after at most the batch it is building.
  ~Prefetcher();

  // Restart()
  //
  // Begins the run of batches `produce(i)`, i in [first, end); `produce` is
  // called on the background thread and must stay valid for the run.
  void Restart(Produce produce, int64_t first, int64_t end);

  // Next()
  //
  // The run's next batch, waiting until it is built. CHECK-fails when the run
  // has no batch left.
  Batch Next();

 private:
  void Loop();

  const int num_threads_;
  const size_t depth_;
  std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_: the run (a new generation per Restart), its batches
  // built and not yet taken, the next index to build and the next to take.
  int64_t generation_ = 0;
  Produce produce_;
  int64_t build_next_ = 0, take_next_ = 0, end_ = 0;
  std::deque<Batch> queue_;
  bool shutdown_ = false;
  std::thread thread_;  // started by the first Restart
};

}  // namespace dive::data

#endif  // DATASETS_PREFETCHER_H_
