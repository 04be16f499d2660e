#include "datasets/prefetcher.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "gtest/gtest.h"
#include "tensor/tensor.h"

namespace dive::data {
namespace {

// A batch that says which run and index built it.
Batch Labelled(int64_t run, int64_t index) {
  Batch b;
  b.labels = Tensor::FromInt64Vector({run, index}, {2});
  return b;
}

TEST(PrefetcherTest, HandsOutTheRunInOrder) {
  Prefetcher prefetcher(/*num_threads=*/1);
  prefetcher.Restart([](int64_t i) { return Labelled(0, i); }, 3, 9);
  for (int64_t i = 3; i < 9; ++i) {
    EXPECT_EQ(prefetcher.Next().labels.ToInt64Vector(),
              (std::vector<int64_t>{0, i}));
  }
}

TEST(PrefetcherTest, BuildsNoMoreThanItsDepthAhead) {
  std::atomic<int64_t> built{0};
  Prefetcher prefetcher(/*num_threads=*/1, /*depth=*/2);
  prefetcher.Restart(
      [&built](int64_t i) {
        ++built;
        return Labelled(0, i);
      },
      0, 100);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_LE(built.load(), 3);  // two queued and at most one in the making
  prefetcher.Next();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_LE(built.load(), 4);
}

TEST(PrefetcherTest, RestartDiscardsTheOldRun) {
  Prefetcher prefetcher(/*num_threads=*/1);
  prefetcher.Restart([](int64_t i) { return Labelled(1, i); }, 0, 10);
  EXPECT_EQ(prefetcher.Next().labels.ToInt64Vector(),
            (std::vector<int64_t>{1, 0}));
  prefetcher.Restart([](int64_t i) { return Labelled(2, i); }, 5, 7);
  EXPECT_EQ(prefetcher.Next().labels.ToInt64Vector(),
            (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(prefetcher.Next().labels.ToInt64Vector(),
            (std::vector<int64_t>{2, 6}));
}

TEST(PrefetcherTest, DestroyingMidRunDoesNotWaitForTheRest) {
  const auto start = std::chrono::steady_clock::now();
  {
    Prefetcher prefetcher(/*num_threads=*/1);
    prefetcher.Restart(
        [](int64_t i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          return Labelled(0, i);
        },
        0, 1000);
    prefetcher.Next();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(PrefetcherDeathTest, NextPastTheEnd) {
  Prefetcher prefetcher(/*num_threads=*/1);
  prefetcher.Restart([](int64_t i) { return Labelled(0, i); }, 0, 1);
  prefetcher.Next();
  EXPECT_DEATH(prefetcher.Next(), "the run has ended");
}

}  // namespace
}  // namespace dive::data
