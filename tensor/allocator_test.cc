#include "tensor/allocator.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tensor/tensor.h"

namespace dive {
namespace {

// Counts what passes through it to the system allocator.
class CountingAllocator : public Allocator {
 public:
  void* Allocate(size_t nbytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++allocations_;
    live_bytes_ += nbytes;
    return SystemAllocator().Allocate(nbytes);
  }
  void Free(void* p, size_t nbytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++frees_;
    live_bytes_ -= nbytes;
    SystemAllocator().Free(p, nbytes);
  }
  int64_t allocations() const { return allocations_; }
  int64_t frees() const { return frees_; }
  int64_t live_bytes() const { return live_bytes_; }

 private:
  std::mutex mu_;
  int64_t allocations_ = 0, frees_ = 0, live_bytes_ = 0;
};

TEST(SystemAllocatorTest, BlocksAreAligned) {
  for (size_t n : {1, 63, 64, 1000}) {
    void* p = SystemAllocator().Allocate(n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kAllocatorAlignment, 0u) << n;
    SystemAllocator().Free(p, n);
  }
}

TEST(CachingAllocatorTest, HandsAFreedBlockOutAgainForTheSameSize) {
  CountingAllocator backing;
  CachingAllocator cache(backing, 1 << 20);
  void* a = cache.Allocate(256);
  cache.Free(a, 256);
  EXPECT_EQ(cache.cached_bytes(), 256u);
  EXPECT_EQ(cache.Allocate(256), a);  // from the cache
  EXPECT_EQ(cache.cached_bytes(), 0u);
  void* b = cache.Allocate(512);  // another size: from the backing allocator
  EXPECT_EQ(backing.allocations(), 2);
  cache.Free(a, 256);
  cache.Free(b, 512);
  EXPECT_EQ(backing.frees(), 0);
  EXPECT_EQ(cache.cached_bytes(), 768u);
}

// A cached block serves a smaller request when it is under twice as large
// (the smallest such block), and goes back with its own size.
TEST(CachingAllocatorTest, ServesASmallerRequestFromTheSmallestLargerBlock) {
  CountingAllocator backing;
  CachingAllocator cache(backing, 1 << 20);
  void* big = cache.Allocate(1000);
  void* bigger = cache.Allocate(1500);
  void* huge = cache.Allocate(4096);
  cache.Free(huge, 4096);
  cache.Free(bigger, 1500);
  cache.Free(big, 1000);
  EXPECT_EQ(cache.Allocate(900), big);     // 1000 < 1800: the smallest fit
  EXPECT_EQ(cache.Allocate(900), bigger);  // 1500 < 1800
  void* fresh = cache.Allocate(1024);      // 4096 is 4x: not taken
  EXPECT_NE(fresh, huge);
  EXPECT_EQ(backing.allocations(), 4);
  EXPECT_EQ(cache.cached_bytes(), 4096u);
  cache.Free(big, 900);  // back with its own 1000 bytes
  cache.Free(bigger, 900);
  EXPECT_EQ(cache.cached_bytes(), 4096u + 1000u + 1500u);
  EXPECT_EQ(cache.Allocate(1000), big);  // an exact fit again
  cache.Free(big, 1000);
  cache.Free(fresh, 1024);
  cache.EmptyCache();
  EXPECT_EQ(backing.live_bytes(), 0);  // every block freed with its size
  EXPECT_EQ(backing.frees(), 4);
}

TEST(CachingAllocatorTest, EmptyCacheGivesEveryBlockBack) {
  CountingAllocator backing;
  CachingAllocator cache(backing, 1 << 20);
  void* a = cache.Allocate(128);
  void* b = cache.Allocate(128);
  void* c = cache.Allocate(4096);
  cache.Free(a, 128);
  cache.Free(b, 128);
  cache.EmptyCache();
  EXPECT_EQ(cache.cached_bytes(), 0u);
  EXPECT_EQ(backing.frees(), 2);
  EXPECT_EQ(backing.live_bytes(), 4096);  // c, still in use
  cache.Free(c, 4096);
}

TEST(CachingAllocatorTest, KeepsNoMoreThanItsLimit) {
  CountingAllocator backing;
  CachingAllocator cache(backing, 1000);
  void* a = cache.Allocate(640);
  void* b = cache.Allocate(640);
  cache.Free(a, 640);
  cache.Free(b, 640);  // 1280 > 1000: straight back to `backing`
  EXPECT_EQ(cache.cached_bytes(), 640u);
  EXPECT_EQ(backing.frees(), 1);
}

TEST(CachingAllocatorTest, DestructionGivesTheCacheBack) {
  CountingAllocator backing;
  {
    CachingAllocator cache(backing, 1 << 20);
    cache.Free(cache.Allocate(64), 64);
  }
  EXPECT_EQ(backing.live_bytes(), 0);
}

constexpr size_t kMiB = size_t{1} << 20;

// Large blocks are pieces of segments of kMinSegmentBytes at least: a freed
// piece serves later requests of other sizes, best fit, split off the rest,
// and freed pieces merge again.
TEST(CachingAllocatorTest, SplitsAndMergesLargeBlocks) {
  constexpr size_t kSegment = CachingAllocator::kMinSegmentBytes;
  CountingAllocator backing;
  CachingAllocator cache(backing, size_t{1} << 30);
  char* a = static_cast<char*>(cache.Allocate(6 * kMiB));
  EXPECT_EQ(backing.allocations(), 1);
  EXPECT_EQ(cache.reserved_bytes(), kSegment);
  EXPECT_EQ(cache.cached_bytes(), kSegment - 6 * kMiB);  // the rest, split off
  cache.Free(a, 6 * kMiB);
  EXPECT_EQ(cache.cached_bytes(), kSegment);
  // 1 MiB, 3 MiB and 2 MiB, one after another from the segment's start.
  char* b = static_cast<char*>(cache.Allocate(kMiB));
  char* c = static_cast<char*>(cache.Allocate(3 * kMiB));
  char* d = static_cast<char*>(cache.Allocate(2 * kMiB));
  EXPECT_EQ(b, a);
  EXPECT_EQ(c, a + kMiB);
  EXPECT_EQ(d, a + 4 * kMiB);
  cache.Free(b, kMiB);
  cache.Free(d, 2 * kMiB);  // merges with the rest after it
  EXPECT_EQ(cache.cached_bytes(), kSegment - 3 * kMiB);
  EXPECT_EQ(cache.Allocate(kMiB), a);  // best fit: b's piece, not the rest
  cache.Free(a, kMiB);
  cache.Free(c, 3 * kMiB);  // b's piece, c's and the rest: the whole segment
  EXPECT_EQ(cache.Allocate(kSegment), a);
  EXPECT_EQ(backing.allocations(), 1);
  cache.Free(a, kSegment);
  cache.EmptyCache();
  EXPECT_EQ(backing.live_bytes(), 0);
  EXPECT_EQ(cache.reserved_bytes(), 0u);
}

// A rest under a large block stays with its piece; a new segment is as large
// as all before it together.
TEST(CachingAllocatorTest, GrowsBySegmentsAsLargeAsAllBefore) {
  constexpr size_t kSegment = CachingAllocator::kMinSegmentBytes;
  CountingAllocator backing;
  CachingAllocator cache(backing, size_t{1} << 30);
  void* a = cache.Allocate(kSegment - kMiB / 2);  // the whole first segment
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % kAllocatorAlignment, 0u);
  EXPECT_EQ(cache.cached_bytes(), 0u);
  void* b = cache.Allocate(kMiB);  // a second segment, as large as the first
  EXPECT_EQ(backing.allocations(), 2);
  EXPECT_EQ(cache.reserved_bytes(), 2 * kSegment);
  void* c = cache.Allocate(kSegment);  // fits in neither: a third, of 2x
  EXPECT_EQ(backing.allocations(), 3);
  EXPECT_EQ(cache.reserved_bytes(), 4 * kSegment);
  EXPECT_EQ(cache.cached_bytes(), 2 * kSegment - kMiB);
  cache.Free(a, kSegment - kMiB / 2);
  cache.Free(b, kMiB);
  cache.Free(c, kSegment);
  EXPECT_EQ(cache.cached_bytes(), 4 * kSegment);
  cache.EmptyCache();
  EXPECT_EQ(backing.live_bytes(), 0);
}

// EmptyCache gives back only segments free as a whole; the cache's limit
// gives back wholly free segments as they are freed.
TEST(CachingAllocatorTest, GivesBackWhollyFreeSegments) {
  constexpr size_t kSegment = CachingAllocator::kMinSegmentBytes;
  CountingAllocator backing;
  {
    CachingAllocator cache(backing, size_t{1} << 30);
    void* a = cache.Allocate(kSegment);
    void* b = cache.Allocate(kMiB);  // in a second segment
    cache.Free(a, kSegment);
    cache.EmptyCache();  // a's segment goes; b's is partly in use
    EXPECT_EQ(backing.live_bytes(), static_cast<int64_t>(kSegment));
    EXPECT_EQ(cache.cached_bytes(), kSegment - kMiB);
    cache.Free(b, kMiB);
  }
  EXPECT_EQ(backing.live_bytes(), 0);  // destruction gives the rest back

  CountingAllocator backing2;
  CachingAllocator capped(backing2, kSegment + kSegment / 2);
  void* c = capped.Allocate(kSegment);
  void* d = capped.Allocate(kSegment);
  capped.Free(c, kSegment);
  EXPECT_EQ(backing2.frees(), 0);  // within the limit
  capped.Free(d, kSegment);  // over it: one wholly free segment goes back
  EXPECT_EQ(backing2.live_bytes(), static_cast<int64_t>(kSegment));
  EXPECT_EQ(capped.cached_bytes(), kSegment);
}

// Freeing a large block twice, or a pointer the cache never handed out, is
// a programming error: it fails naming the pointer.
TEST(CachingAllocatorDeathTest, FreeingALargeBlockNotInUseFails) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  CountingAllocator backing;
  CachingAllocator cache(backing, size_t{1} << 30);
  void* a = cache.Allocate(2 * kMiB);
  cache.Free(a, 2 * kMiB);
  EXPECT_DEATH(cache.Free(a, 2 * kMiB),
               "CachingAllocator: 0x[0-9a-f]+ is not a large block in use");
  int on_stack = 0;
  EXPECT_DEATH(cache.Free(&on_stack, 2 * kMiB), "is not a large block in use");
}

// Random large and small blocks, each filled with its own byte and checked
// when freed: no two blocks in use overlap, and everything goes back.
TEST(CachingAllocatorTest, BlocksInUseNeverOverlap) {
  CountingAllocator backing;
  CachingAllocator cache(backing, size_t{1} << 30);
  std::mt19937 rng(7);
  struct Live {
    unsigned char* p;
    size_t n;
    unsigned char fill;
  };
  std::vector<Live> live;
  const auto check_and_free = [&](size_t i) {
    const Live& b = live[i];
    for (size_t k = 0; k < b.n; k += 4093) {
      ASSERT_EQ(b.p[k], b.fill) << "block of " << b.n << " overwritten";
    }
    ASSERT_EQ(b.p[b.n - 1], b.fill);
    cache.Free(b.p, b.n);
    live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
  };
  for (int step = 0; step < 2000; ++step) {
    if (!live.empty() && rng() % 2 == 0) {
      check_and_free(rng() % live.size());
      continue;
    }
    const size_t n =
        rng() % 3 == 0 ? 1 + rng() % 65536 : kMiB + rng() % (7 * kMiB);
    auto* p = static_cast<unsigned char*>(cache.Allocate(n));
    ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % kAllocatorAlignment, 0u);
    const auto fill = static_cast<unsigned char>(step);
    std::memset(p, fill, n);
    live.push_back({p, n, fill});
  }
  while (!live.empty()) check_and_free(live.size() - 1);
  cache.EmptyCache();
  EXPECT_EQ(cache.reserved_bytes(), 0u);
  EXPECT_EQ(backing.live_bytes(), 0);
}

TEST(DefaultAllocatorTest, StorageUsesTheDefaultAndFreesIntoItsOwn) {
  CountingAllocator counting;
  Allocator* previous = SetDefaultAllocator(&counting);
  EXPECT_EQ(&DefaultAllocator(), &counting);
  Tensor t = Tensor::Zeros({1000});  // 4000 bytes, rounded to 4032
  EXPECT_EQ(counting.allocations(), 1);
  EXPECT_EQ(counting.live_bytes(), 4032);
  SetDefaultAllocator(previous);
  EXPECT_NE(&DefaultAllocator(), &counting);
  Tensor u = Tensor::Zeros({10});  // not from `counting`
  EXPECT_EQ(counting.allocations(), 1);
  t = Tensor();  // freed into `counting`, though it is no longer the default
  EXPECT_EQ(counting.frees(), 1);
  EXPECT_EQ(counting.live_bytes(), 0);
}

}  // namespace
}  // namespace dive
