#include "tensor/allocator.h"

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "glog/logging.h"

namespace dive {
namespace {

class System : public Allocator {
 public:
  void* Allocate(size_t nbytes) override {
    const size_t rounded = (nbytes + kAllocatorAlignment - 1) /
                           kAllocatorAlignment * kAllocatorAlignment;
    void* p = std::aligned_alloc(kAllocatorAlignment, rounded);
    CHECK(p != nullptr) << "out of memory allocating " << nbytes << " bytes";
    return p;
  }
  void Free(void* p, size_t) override { std::free(p); }
};

constexpr size_t kMaxCachedBytes = size_t{2} << 30;

// The built-in cache, or null under DIVE_NO_ALLOCATOR_CACHE.
CachingAllocator* BuiltInCache() {
  static CachingAllocator* cache =
      std::getenv("DIVE_NO_ALLOCATOR_CACHE") == nullptr
          ? new CachingAllocator(SystemAllocator(), kMaxCachedBytes)
          : nullptr;
  return cache;
}

std::atomic<Allocator*> user_default{nullptr};

}  // namespace

Allocator& SystemAllocator() {
  static System* system = new System();
  return *system;
}

CachingAllocator::CachingAllocator(Allocator& backing, size_t max_cached_bytes)
    : backing_(backing), max_cached_bytes_(max_cached_bytes) {}

CachingAllocator::~CachingAllocator() { EmptyCache(); }

void* CachingAllocator::Allocate(size_t nbytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // The smallest cached block that holds nbytes, if under twice as large.
    auto it = free_.lower_bound(nbytes);
    if (it != free_.end() && it->first / 2 <= nbytes) {
      const size_t capacity = it->first;
      void* p = it->second.back();
      it->second.pop_back();
      if (it->second.empty()) free_.erase(it);
      cached_bytes_ -= capacity;
      if (capacity != nbytes) larger_[p] = capacity;
      return p;
    }
  }
  return backing_.Allocate(nbytes);
}

void CachingAllocator::Free(void* p, size_t nbytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = larger_.find(p); it != larger_.end()) {
      nbytes = it->second;
      larger_.erase(it);
    }
    if (cached_bytes_ + nbytes <= max_cached_bytes_) {
      free_[nbytes].push_back(p);
      cached_bytes_ += nbytes;
      return;
    }
  }
  backing_.Free(p, nbytes);
}

void CachingAllocator::EmptyCache() {
  std::map<size_t, std::vector<void*>> blocks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    blocks.swap(free_);
    cached_bytes_ = 0;
  }
  for (const auto& [nbytes, ps] : blocks) {
    for (void* p : ps) backing_.Free(p, nbytes);
  }
}

size_t CachingAllocator::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_bytes_;
}

Allocator& DefaultAllocator() {
  if (Allocator* a = user_default.load(std::memory_order_acquire)) return *a;
  if (CachingAllocator* cache = BuiltInCache()) return *cache;
  return SystemAllocator();
}

Allocator* SetDefaultAllocator(Allocator* allocator) {
  Allocator* previous =
      user_default.exchange(allocator, std::memory_order_acq_rel);
  return previous;
}

}  // namespace dive
