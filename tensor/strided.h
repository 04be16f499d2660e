// File: tensor/strided.h
// -----------------------------------------------------------------------------
//
// Internal helper for kernels over strided views. `ForEachStrided` walks the
// elements of `shape` for N operands that each have their own strides (a
// stride of 0 is a broadcast dimension) and calls
//
//   f(n, offsets, inner_strides)
//
// once per innermost run of `n` elements, so the hot loop is a plain strided
// (usually unit-stride) loop the compiler can vectorize. The dimensions are
// walked in the order the first operand (the output) lies in memory, its
// largest stride outermost, where it has no broadcast (stride-0) dimension:
// a channels-last output (tensor/memory_format.h) is walked N, H, W, C, a
// contiguous one in index order. Adjacent dimensions that are contiguous
// for every operand are then merged, so a contiguous tensor is walked as a
// single run. Large walks are split across OpenMP
// threads by outer index.

#ifndef TENSOR_STRIDED_H_
#define TENSOR_STRIDED_H_

#include <algorithm>
#include <array>
#include <cstdint>

#include "tensor/shape.h"

namespace dive {

template <int N>
using Offsets = std::array<int64_t, N>;

// Merged dimensions and per-operand strides.
template <int N>
struct CollapsedLayout {
  Dims shape;
  std::array<Dims, N> strides;
};

// The dimensions in the order operand 0 lies in memory (by decreasing
// stride, ties in index order), or in index order where it has a stride-0
// dimension (a reduction's output) or is already in that order.
inline Dims WalkOrder(const Shape& shape, const Dims& s0) {
  Dims order(shape.rank());
  for (int d = 0; d < shape.rank(); ++d) order[d] = d;
  for (int d = 0; d < shape.rank(); ++d) {
    if (shape.dims()[d] != 1 && s0[d] == 0) return order;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return s0[a] > s0[b]; });
  return order;
}

template <int N>
CollapsedLayout<N> Collapse(const Shape& shape,
                            const std::array<const Dims*, N>& strides) {
  CollapsedLayout<N> out;
  for (int64_t d : WalkOrder(shape, *strides[0])) {
    const int64_t size = shape.dims()[d];
    if (size == 1) continue;  // size-1 dims never move the offsets.
    bool merge = !out.shape.empty();
    for (int k = 0; k < N && merge; ++k) {
      merge = out.strides[k].back() == (*strides[k])[d] * size;
    }
    if (merge) {
      out.shape.back() *= size;
      for (int k = 0; k < N; ++k) out.strides[k].back() = (*strides[k])[d];
    } else {
      out.shape.push_back(size);
      for (int k = 0; k < N; ++k) out.strides[k].push_back((*strides[k])[d]);
    }
  }
  if (out.shape.empty()) {  // scalar or all-ones shape: one element.
    out.shape.push_back(1);
    for (int k = 0; k < N; ++k) out.strides[k].push_back(0);
  }
  return out;
}

// `parallel`: whether outer runs may be split across threads (callers pass
// false when runs write overlapping outputs, e.g. reductions).
template <int N, typename F>
void ForEachStrided(const Shape& shape,
                    const std::array<const Dims*, N>& strides, F&& f,
                    bool parallel = true) {
  if (shape.numel() == 0) return;
  const CollapsedLayout<N> lay = Collapse<N>(shape, strides);
  const int r = static_cast<int>(lay.shape.size());
  const int64_t inner = lay.shape[r - 1];
  Offsets<N> inner_strides;
  for (int k = 0; k < N; ++k) inner_strides[k] = lay.strides[k][r - 1];
  int64_t outer = 1;
  for (int d = 0; d < r - 1; ++d) outer *= lay.shape[d];

  // A task is one outer index, or a chunk of the innermost run when there
  // are too few outer indices to keep the threads busy (a contiguous tensor
  // collapses to a single run).
  constexpr int64_t kChunk = int64_t{1} << 14;
  const bool go_parallel = parallel && shape.numel() >= (int64_t{1} << 15);
  const int64_t chunks =
      go_parallel && outer < 64 ? (inner + kChunk - 1) / kChunk : 1;
  const int64_t chunk_len = (inner + chunks - 1) / chunks;
  auto run = [&](int64_t task) {
    const int64_t o = task / chunks, c = task % chunks;
    Offsets<N> off{};
    int64_t rem = o;
    for (int d = r - 2; d >= 0; --d) {
      const int64_t i = rem % lay.shape[d];
      rem /= lay.shape[d];
      for (int k = 0; k < N; ++k) off[k] += i * lay.strides[k][d];
    }
    const int64_t begin = c * chunk_len;
    const int64_t n = std::min(inner, begin + chunk_len) - begin;
    for (int k = 0; k < N; ++k) off[k] += begin * inner_strides[k];
    if (n > 0) f(n, off, inner_strides);
  };
  const int64_t tasks = outer * chunks;
  if (go_parallel && tasks > 1) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) run(t);
  } else {
    for (int64_t t = 0; t < tasks; ++t) run(t);
  }
}

template <typename F>
void ForEachStrided1(const Shape& shape, const Dims& s0, F&& f) {
  ForEachStrided<1>(shape, {&s0},
                    [&](int64_t n, const Offsets<1>& o, const Offsets<1>& st) {
                      f(n, o[0], st[0]);
                    });
}

template <typename F>
void ForEachStrided2(const Shape& shape, const Dims& s0, const Dims& s1,
                     F&& f) {
  ForEachStrided<2>(shape, {&s0, &s1},
                    [&](int64_t n, const Offsets<2>& o, const Offsets<2>& st) {
                      f(n, o[0], st[0], o[1], st[1]);
                    });
}

}  // namespace dive

#endif  // TENSOR_STRIDED_H_
