// File: tensor/kernel_util.h
// -----------------------------------------------------------------------------
//
// Internal to //tensor: what the kernels of gemm.cc, conv.cc, pool.cc and
// batch_norm.cc share. Integer rounding, the split of a range over threads,
// double-precision sums that still vectorize, scratch tensors from the
// allocator's cache, and the checks and window arithmetic of NCHW kernels.
// Not part of the API: the names may change with the kernels.

#ifndef TENSOR_KERNEL_UTIL_H_
#define TENSOR_KERNEL_UTIL_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "tensor/shape.h"
#include "tensor/tensor.h"

namespace dive::kernel_internal {

// ---- Integers and threads ---------------------------------------------------

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// x rounded up to a multiple of `unit`.
inline int64_t RoundUp(int64_t x, int64_t unit) {
  return CeilDiv(x, unit) * unit;
}

// The part [first, second) of [0, extent) that thread t of `threads` takes:
// whole units of `unit` (the last one may be short), as evenly as they go.
inline std::pair<int64_t, int64_t> ThreadSlab(int64_t extent, int64_t unit,
                                              int t, int threads) {
  const int64_t units = CeilDiv(extent, unit);
  return {std::min(extent, units * t / threads * unit),
          std::min(extent, units * (t + 1) / threads * unit)};
}

// ---- Sums and scratch -------------------------------------------------------

// The sum of f(0), ..., f(n - 1) in double. Eight independent partial sums
// let the compiler vectorize without reassociating.
template <typename F>
double SumDouble(int64_t n, F f) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += f(i + k);
  }
  double tail = 0.0;
  for (; i < n; ++i) tail += f(i);
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) +
         ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

// Scratch memory from the tensor allocator's cache, so that a training loop's
// steady state allocates nothing.
inline Tensor Scratch(int64_t size) {
  return Tensor::Empty({std::max<int64_t>(size, 1)});
}

// An element read by such a kernel, as float (exact for both).
inline float AsFloat(float v) { return v; }
inline float AsFloat(bfloat16 v) { return static_cast<float>(v); }

// Calls f with x's elements: float32, or bf16 (an activation stored at half
// the bytes), for kernels that read either (exactly, as float).
template <typename F>
decltype(auto) WithActivation(const Tensor& x, const F& f) {
  return x.dtype() == DType::kBfloat16 ? f(x.data<bfloat16>())
                                       : f(x.data<float>());
}

// The sum of p[0..n) in double.
inline double SumDouble(const float* p, int64_t n) {
  return SumDouble(n, [p](int64_t i) { return p[i]; });
}

// ---- NCHW kernels -----------------------------------------------------------

// CHECK-fail naming `op` unless t is a defined float32 4-D tensor (or
// bfloat16, when the kernel reads it: `bf16_ok`).
void CheckFloat4D(const char* op, const char* name, const Tensor& t,
                  bool bf16_ok = false);

// CHECK-fail naming `op` unless s has rank 4.
void CheckShape4D(const char* op, const char* name, const Shape& s);

// " (x [2, 3, 8, 8], w [4, 1, 3, 3])": the shapes an error message names.
std::string Shapes(const char* name_a, const Shape& a, const char* name_b,
                   const Shape& b);

// ConvOutSize with a message naming the op, the dimension and the shapes.
int64_t OutSize(const char* op, const char* dim, int64_t in, int64_t kernel,
                int64_t stride, int64_t pad, const std::string& shapes);

// A kernel window swept over an h x w input, what convolution and pooling
// share: the kernel (kh x kw), its stride (sh, sw), the padding on each side
// (ph, pw), and the output size (oh x ow) they give.
struct Window2d {
  int64_t h, w;
  int64_t kh, kw, sh, sw, ph, pw;
  int64_t oh = 0, ow = 0;
};

// `window` with its output size computed by OutSize, height then width
// (CHECK-failing with `op` and `shapes` as OutSize does).
Window2d MakeWindow2d(const char* op, Window2d window,
                      const std::string& shapes);

// The output positions o in [*lo, *hi) (clamped to [0, out)) for which
// o * stride + offset lies in [0, in).
void ValidRange(int64_t in, int64_t offset, int64_t stride, int64_t out,
                int64_t* lo, int64_t* hi);

}  // namespace dive::kernel_internal

#endif  // TENSOR_KERNEL_UTIL_H_
