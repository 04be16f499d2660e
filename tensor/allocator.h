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
// again before asking `backing`: for a request of n bytes, the smallest
// cached block of n to 2n - 1 bytes (it goes back to the cache, or to
// `backing`, with its own size). A training step allocates the same sizes
// every iteration, so after the first step the cache serves every tensor;
// taking a slightly larger block, rather than only an exact size, keeps
// memory that one size freed from sitting idle while a nearby size is
// allocated anew (DenseNet's many concatenation sizes). Thread-safe.
class CachingAllocator : public Allocator {
 public:
  CachingAllocator(Allocator& backing, size_t max_cached_bytes);
  // Gives every cached block back to `backing`.
  ~CachingAllocator() override;

  void* Allocate(size_t nbytes) override;
  void Free(void* p, size_t nbytes) override;

  // EmptyCache()
  //
  // Gives every cached block back to `backing` (PyTorch's
  // torch.cuda.empty_cache()); blocks in use are not affected.
  void EmptyCache();

  // The bytes held in the cache now (freed, not yet handed out again).
  size_t cached_bytes() const;

 private:
  Allocator& backing_;
  const size_t max_cached_bytes_;
  mutable std::mutex mu_;
  // Cached blocks by size.
  std::map<size_t, std::vector<void*>> free_;
  // The sizes of the blocks handed out for a smaller request.
  std::unordered_map<void*, size_t> larger_;
  size_t cached_bytes_ = 0;
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
