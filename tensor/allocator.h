// File: tensor/allocator.h
// -----------------------------------------------------------------------------
//
// Where tensor memory comes from. `Allocator` is the interface (as c10's
// `Allocator` behind `StorageImpl`): 64-byte aligned blocks, given back with
// their size. Two implementations: `SystemAllocator()` (aligned_alloc/free)
// and `CachingAllocator`, a cache of freed blocks in front of another one.
// A training step allocates the same sizes every iteration, so after the
// first step the cache serves every tensor with a map lookup.
//
// New `Storage` takes its memory from `DefaultAllocator()`: a process-wide
// CachingAllocator over the system allocator, or the system allocator itself
// when the environment variable DIVE_NO_ALLOCATOR_CACHE is set (the sanitizer
// builds set it, so that a use after free is caught). Each storage remembers
// its allocator and frees into it.
//
// Example:
//
//   CountingAllocator counting;   // a user's Allocator
//   Allocator* previous = dive::SetDefaultAllocator(&counting);
//   Tensor t = Tensor::Zeros({1024});  // from `counting`
//   dive::SetDefaultAllocator(previous);

#ifndef TENSOR_ALLOCATOR_H_
#define TENSOR_ALLOCATOR_H_

#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace dive {

// Blocks are aligned to this many bytes (one cache line, one zmm register).
inline constexpr size_t kAllocatorAlignment = 64;

class Allocator {
 public:
  virtual ~Allocator() = default;

  // Allocate()
  //
  // At least `nbytes` bytes (nbytes > 0), kAllocatorAlignment-aligned.
  // CHECK-fails when out of memory.
  virtual void* Allocate(size_t nbytes) = 0;

  // Free()
  //
  // Gives back `p`, which Allocate(nbytes) returned, with the same nbytes.
  virtual void Free(void* p, size_t nbytes) = 0;
};

// SystemAllocator()
//
// std::aligned_alloc and std::free; thread-safe, never destroyed.
Allocator& SystemAllocator();

// Keeps freed blocks, up to `max_cached_bytes` in all, and hands them out
// again before asking `backing`. A training step allocates the same sizes
// every iteration, so after the first step the cache serves every tensor.
// Thread-safe. Two kinds of block:
//
//   * small (under kLargeBlockBytes): for a request of n bytes, the smallest
//     cached block of n to 2n - 1 bytes (it goes back to the cache, or to
//     `backing`, with its own size); a miss asks `backing` for n bytes.
//   * large (activations, gradients, weights): carved out of segments taken
//     from `backing`, best fit: the smallest free piece that holds the
//     request, split when the rest is itself a large block. A new segment is
//     as large as all before it together (kMinSegmentBytes at least, whole
//     kSegmentBytes), so there are few of them and few free pieces are cut
//     apart at their edges; Linux is asked to back them with transparent
//     huge pages (madvise), which memory-bound kernels streaming them gain
//     from. A freed piece merges with its free neighbours,
//     so that the memory one size freed serves any other size later (the
//     activations a bf16 step keeps beside float32 gradients of the same
//     shapes, DenseNet's many concatenation sizes). A segment that is free
//     as a whole goes back to `backing` when the cache would hold more than
//     its limit, and on EmptyCache.
//
// The memory taken from `backing` then stays near the step's peak of memory
// in use (PyTorch's CUDA caching allocator splits its segments alike);
// caching each size apart held up to twice that.
class CachingAllocator : public Allocator {
 public:
  static constexpr size_t kLargeBlockBytes = size_t{1} << 20;
  static constexpr size_t kSegmentBytes = size_t{2} << 20;
  static constexpr size_t kMinSegmentBytes = size_t{32} << 20;

  CachingAllocator(Allocator& backing, size_t max_cached_bytes);
  // Gives every cached block back to `backing`.
  ~CachingAllocator() override;

  void* Allocate(size_t nbytes) override;
  void Free(void* p, size_t nbytes) override;

  // EmptyCache()
  //
  // Gives every cached block and every wholly free segment back to
  // `backing` (PyTorch's torch.cuda.empty_cache()); blocks in use are not
  // affected.
  void EmptyCache();

  // The bytes held in the cache now (freed, not yet handed out again).
  size_t cached_bytes() const;
  // The bytes taken from `backing` and not given back: in use plus cached.
  size_t reserved_bytes() const;

 private:
  // A piece of a segment, free or in use.
  struct Piece {
    char* segment;
    size_t size;
    bool free;
  };
  using Pieces = std::map<char*, Piece>;

  void* AllocateLarge(size_t nbytes);
  void FreeLarge(void* p);
  // Marks `it` free, merged with its free neighbours, and lists it.
  void Release(Pieces::iterator it);
  // Takes the free piece `it` off the list of free pieces.
  void Unlist(Pieces::iterator it);
  // The wholly free segments, unlisted, while the cache holds more than
  // `keep` bytes (all of them for 0); to be freed outside the lock.
  std::vector<std::pair<char*, size_t>> TakeFreeSegments(size_t keep);

  Allocator& backing_;
  const size_t max_cached_bytes_;
  mutable std::mutex mu_;
  // Cached small blocks by size.
  std::map<size_t, std::vector<void*>> free_;
  // The sizes of the small blocks handed out for a smaller request.
  std::unordered_map<void*, size_t> larger_;
  // Every piece of every segment by address, and the free ones by size.
  Pieces pieces_;
  std::multimap<size_t, char*> free_pieces_;
  size_t cached_bytes_ = 0;
  size_t reserved_bytes_ = 0;
};

// DefaultAllocator()
//
// The allocator that new Storage uses: the one last set by
// SetDefaultAllocator, else the process-wide cache (2 GiB at most) over
// SystemAllocator(), or SystemAllocator() itself under
// DIVE_NO_ALLOCATOR_CACHE.
Allocator& DefaultAllocator();

// SetDefaultAllocator()
//
// Makes `allocator` (which must outlive every storage allocated from it) the
// default for storage created from now on, or restores the built-in default
// for nullptr; returns the previous one (nullptr for the built-in). Storage
// created before keeps freeing into its own allocator.
Allocator* SetDefaultAllocator(Allocator* allocator);

}  // namespace dive

#endif  // TENSOR_ALLOCATOR_H_
