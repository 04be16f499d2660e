#include "tensor/allocator.h"

#include <cstdint>
#include <map>
#include <mutex>

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
