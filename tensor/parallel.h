// File: tensor/parallel.h
// -----------------------------------------------------------------------------
//
// Internal to //tensor: the parallel loop of the kernels; every parallel
// region of conv.cc, ops.cc, pool.cc and batch_norm.cc, and any whose
// workers may reach the GEMM, runs through it. An OpenMP worker starts with
// its own thread-locals, so a setting of the thread that starts the region
// (the matmul precision of tensor/gemm.h, set around a training step under
// --precision=bf16) would be lost in the workers, and their products
// silently computed in float32. ParallelFor captures the caller's settings
// once (ThreadContext) and installs them in each worker for the region; no
// kernel copies a setting by hand. (The GEMM's own regions are handed the
// precision: in the GemmLhs or as an argument. strided.h's elementwise loop,
// below the GEMM in the build graph, never reaches it and stays plain
// OpenMP.) Not part of the API: the names may change with the kernels.
//
// Example (one GEMM per image, each worker with its own scratch buffer):
//
//   ParallelFor(batch, omp_get_max_threads(),
//               [&](int64_t begin, int64_t end, int thread) {
//     Tensor col = Scratch(col_size);
//     for (int64_t n = begin; n < end; ++n) Image(n, col.data());
//   });

#ifndef TENSOR_PARALLEL_H_
#define TENSOR_PARALLEL_H_

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "tensor/gemm.h"

namespace dive::kernel_internal {

// The per-thread settings that a parallel region's workers take from the
// thread that starts it. A new one is a member here, read in Current() and
// installed by ScopedThreadContext; every ParallelFor then carries it.
struct ThreadContext {
  MatmulPrecision matmul_precision = MatmulPrecision::kFloat32;

  // The calling thread's settings.
  static ThreadContext Current();
};

// Installs `context` in this thread for its lifetime, then restores the
// settings it found.
class ScopedThreadContext {
 public:
  explicit ScopedThreadContext(const ThreadContext& context);
  ScopedThreadContext(const ScopedThreadContext&) = delete;
  ScopedThreadContext& operator=(const ScopedThreadContext&) = delete;

 private:
  const ScopedMatmulPrecision matmul_precision_;
};

// The part [first, second) of [0, n) that worker t of `workers` takes under
// OpenMP's static schedule as libgomp splits it: runs in order, the first
// n % workers one longer.
inline std::pair<int64_t, int64_t> StaticRange(int64_t n, int t, int workers) {
  const int64_t q = n / workers, r = n % workers;
  const int64_t begin = t * q + std::min<int64_t>(t, r);
  return {begin, begin + q + (t < r ? 1 : 0)};
}

// The threads for a region worth parallelizing only when `worth_it` (the
// `if` clause of an OpenMP region): all of them, or 1.
inline int ThreadsIf(bool worth_it) {
  return worth_it ? omp_get_max_threads() : 1;
}

// Runs body(begin, end, thread) over [0, n) on `threads` threads (fewer if
// OpenMP gives fewer): each worker once, on its StaticRange (skipped when
// empty), `thread` its number in [0, threads), with the calling thread's
// ThreadContext installed. With threads <= 1 or n <= 1 it runs
// body(0, n, 0) on the calling thread, without a parallel region. The
// context is copied once per worker, not per index: a body that loops over
// its range costs what `#pragma omp for` does.
template <typename Body>
void ParallelFor(int64_t n, int threads, const Body& body) {
  if (n <= 0) return;
  if (threads <= 1 || n == 1) {
    body(0, n, 0);
    return;
  }
  const ThreadContext context = ThreadContext::Current();
#pragma omp parallel num_threads(threads)
  {
    const ScopedThreadContext inherited(context);
    const int thread = omp_get_thread_num();
    const auto [begin, end] = StaticRange(n, thread, omp_get_num_threads());
    if (begin < end) body(begin, end, thread);
  }
}

}  // namespace dive::kernel_internal

#endif  // TENSOR_PARALLEL_H_
