#include "tensor/allocator.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <mutex>
#include <utility>
#include <vector>

#include "glog/logging.h"

namespace dive {
namespace {

size_t RoundUpTo(size_t n, size_t unit) { return (n + unit - 1) / unit * unit; }

class System : public Allocator {
 public:
  void* Allocate(size_t nbytes) override {
    void* p = std::aligned_alloc(kAllocatorAlignment,
                                 RoundUpTo(nbytes, kAllocatorAlignment));
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
  if (nbytes >= kLargeBlockBytes) return AllocateLarge(nbytes);
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
    reserved_bytes_ += nbytes;
  }
  return backing_.Allocate(nbytes);
}

void CachingAllocator::Free(void* p, size_t nbytes) {
  if (nbytes >= kLargeBlockBytes) return FreeLarge(p);
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
    reserved_bytes_ -= nbytes;
  }
  backing_.Free(p, nbytes);
}

namespace {

// Asks Linux to back the whole 2 MiB pages inside [p, p + n) with
// transparent huge pages where it does so only when asked
// (/sys/kernel/mm/transparent_hugepage/enabled = madvise, Debian's default):
// a segment's tensors are streamed by memory-bound kernels, whose TLB misses
// on 4 KiB pages cost them several percent. A hint; failure changes nothing.
void AdviseHugePages(char* p, size_t n) {
#ifdef MADV_HUGEPAGE
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const uintptr_t begin =
      (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) & ~(kHuge - 1);
  if (end > begin) {
    madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  }
#else
  (void)p;
  (void)n;
#endif
}

}  // namespace

void* CachingAllocator::AllocateLarge(size_t nbytes) {
  // Pieces are whole multiples of kAllocatorAlignment, so that every piece
  // split off a segment is aligned.
  const size_t size = RoundUpTo(nbytes, kAllocatorAlignment);
  std::unique_lock<std::mutex> lock(mu_);
  auto fit = free_pieces_.lower_bound(size);
  if (fit == free_pieces_.end()) {
    const size_t segment_size = RoundUpTo(
        std::max({size, kMinSegmentBytes, reserved_bytes_}), kSegmentBytes);
    lock.unlock();
    char* segment = static_cast<char*>(backing_.Allocate(segment_size));
    AdviseHugePages(segment, segment_size);
    lock.lock();
    reserved_bytes_ += segment_size;
    cached_bytes_ += segment_size;
    fit = free_pieces_.emplace(segment_size, segment);
    pieces_.emplace(segment, Piece{segment, segment_size, true});
  }
  const auto it = pieces_.find(fit->second);
  CHECK(it != pieces_.end() && it->second.free);
  Unlist(it);
  Piece& piece = it->second;
  if (piece.size - size >= kLargeBlockBytes) {  // split off the rest
    char* rest = it->first + size;
    pieces_.emplace(rest, Piece{piece.segment, piece.size - size, true});
    free_pieces_.emplace(piece.size - size, rest);
    cached_bytes_ += piece.size - size;
    piece.size = size;
  }
  piece.free = false;
  return it->first;
}

void CachingAllocator::Unlist(Pieces::iterator it) {
  auto [first, last] = free_pieces_.equal_range(it->second.size);
  for (; first != last; ++first) {
    if (first->second == it->first) {
      free_pieces_.erase(first);
      cached_bytes_ -= it->second.size;
      return;
    }
  }
  LOG(FATAL) << "CachingAllocator: free piece at "
             << static_cast<void*>(it->first) << " is not listed";
}

void CachingAllocator::Release(Pieces::iterator it) {
  it->second.free = true;
  // Merge with the next piece, then the previous one, when free and of the
  // same segment.
  if (auto next = std::next(it); next != pieces_.end() && next->second.free &&
                                 next->second.segment == it->second.segment) {
    Unlist(next);
    it->second.size += next->second.size;
    pieces_.erase(next);
  }
  if (it != pieces_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.free && prev->second.segment == it->second.segment) {
      Unlist(prev);
      prev->second.size += it->second.size;
      pieces_.erase(it);
      it = prev;
    }
  }
  free_pieces_.emplace(it->second.size, it->first);
  cached_bytes_ += it->second.size;
}

std::vector<std::pair<char*, size_t>> CachingAllocator::TakeFreeSegments(
    size_t keep) {
  std::vector<std::pair<char*, size_t>> out;
  for (auto it = pieces_.begin();
       it != pieces_.end() && cached_bytes_ > keep;) {
    const Piece& piece = it->second;
    const bool whole = piece.free && piece.segment == it->first &&
                       (std::next(it) == pieces_.end() ||
                        std::next(it)->second.segment != piece.segment);
    if (!whole) {
      ++it;
      continue;
    }
    Unlist(it);
    reserved_bytes_ -= piece.size;
    out.emplace_back(it->first, piece.size);
    it = pieces_.erase(it);
  }
  return out;
}

void CachingAllocator::FreeLarge(void* p) {
  std::vector<std::pair<char*, size_t>> segments;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = pieces_.find(static_cast<char*>(p));
    CHECK(it != pieces_.end() && !it->second.free)
        << "CachingAllocator: " << p << " is not a large block in use";
    Release(it);
    if (cached_bytes_ > max_cached_bytes_) {
      segments = TakeFreeSegments(max_cached_bytes_);
    }
  }
  for (const auto& [segment, size] : segments) backing_.Free(segment, size);
}

void CachingAllocator::EmptyCache() {
  std::map<size_t, std::vector<void*>> blocks;
  std::vector<std::pair<char*, size_t>> segments;
  {
    std::lock_guard<std::mutex> lock(mu_);
    blocks.swap(free_);
    for (const auto& [nbytes, ps] : blocks) {
      cached_bytes_ -= nbytes * ps.size();
      reserved_bytes_ -= nbytes * ps.size();
    }
    segments = TakeFreeSegments(0);
  }
  for (const auto& [nbytes, ps] : blocks) {
    for (void* p : ps) backing_.Free(p, nbytes);
  }
  for (const auto& [segment, size] : segments) backing_.Free(segment, size);
}

size_t CachingAllocator::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_bytes_;
}

size_t CachingAllocator::reserved_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reserved_bytes_;
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
