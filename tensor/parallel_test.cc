#include "tensor/parallel.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tensor/bf16.h"
#include "tensor/conv.h"
#include "tensor/gemm.h"
#include "tensor/linear.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace dive::kernel_internal {
namespace {

// The kernels' threads for a scope (SetNumThreads), then the default again.
class ScopedThreads {
 public:
  explicit ScopedThreads(int threads) { SetNumThreads(threads); }
  ~ScopedThreads() { SetNumThreads(0); }
};

// ---- ParallelFor ------------------------------------------------------------

TEST(StaticRange, SplitsInOrderTheFirstOnesOneLonger) {
  using Range = std::pair<int64_t, int64_t>;
  // 10 over 4: 3, 3, 2, 2.
  EXPECT_EQ(StaticRange(10, 0, 4), Range(0, 3));
  EXPECT_EQ(StaticRange(10, 1, 4), Range(3, 6));
  EXPECT_EQ(StaticRange(10, 2, 4), Range(6, 8));
  EXPECT_EQ(StaticRange(10, 3, 4), Range(8, 10));
  // Fewer indices than workers: the last ones get none.
  EXPECT_EQ(StaticRange(2, 1, 3), Range(1, 2));
  EXPECT_EQ(StaticRange(2, 2, 3), Range(2, 2));
}

TEST(ParallelFor, RunsEveryIndexOnceOnThreadsInRange) {
  for (int threads : {1, 2, 3, 4}) {
    for (int64_t n : {0, 1, 2, 3, 7, 64}) {
      SCOPED_TRACE("n " + std::to_string(n) + ", threads " +
                   std::to_string(threads));
      std::vector<int> runs(n, 0), thread_of(n, -1);
      ParallelFor(n, threads, [&](int64_t begin, int64_t end, int thread) {
        for (int64_t i = begin; i < end; ++i) {
          ++runs[i];
          thread_of[i] = thread;
        }
      });
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_EQ(runs[i], 1) << "index " << i;
        EXPECT_GE(thread_of[i], 0) << "index " << i;
        EXPECT_LT(thread_of[i], threads) << "index " << i;
        // Each worker's indices are one run, in thread order.
        if (i > 0) {
          EXPECT_GE(thread_of[i], thread_of[i - 1]) << "index " << i;
        }
      }
    }
  }
}

TEST(ParallelFor, CarriesTheMatmulPrecisionIntoEveryWorkerAndRestoresIt) {
  constexpr int kThreads = 4;
  // Whether each thread computed in bf16 (ints: threads write their own).
  std::vector<int> in_bf16(kThreads, -1);
  auto record = [&](int64_t, int64_t, int thread) {
    in_bf16[thread] = GetMatmulPrecision() == MatmulPrecision::kBfloat16;
  };
  {
    const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
    ParallelFor(kThreads, kThreads, record);
    EXPECT_EQ(GetMatmulPrecision(), MatmulPrecision::kBfloat16);
  }
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(in_bf16[t], 1) << "thread " << t << " of a region in bf16";
  }
  // The pool's threads give the setting back with the region: a region
  // started in float32, by ParallelFor or not, computes in float32.
  ParallelFor(kThreads, kThreads, record);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(in_bf16[t], 0) << "thread " << t << " of a region in float32";
  }
  std::fill(in_bf16.begin(), in_bf16.end(), -1);
#pragma omp parallel num_threads(kThreads)
  record(0, 0, omp_get_thread_num());
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(in_bf16[t], 0) << "thread " << t << " of a plain OpenMP region";
  }
}

// ---- Every parallel kernel that reaches the GEMM, in bf16 -------------------
//
// The operands are q + 2^-12 with q one of 0.5, 0.625, ..., 1.875: bf16 (8
// significant bits) rounds each to its q. The products of rounded operands
// are multiples of 2^-6 and their sums, below 2^18, are exact in float32 in
// any order, on any kernel path and thread count. So a kernel in bf16 gives
// exactly what it gives in float32 on the rounded operands, and that is at
// least 2^-12 per summed product away from its float32 result on the
// operands as they are. A worker that computed in float32 would give the
// latter.

Tensor Operand(const Shape& shape, int seed) {
  Tensor t = Tensor::Empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) {
    p[i] = static_cast<float>(4 + (i * 7 + seed) % 12) / 8 + 1.0f / 4096;
  }
  return t;
}

Tensor RoundedToBf16(const Tensor& t) {
  Tensor r = t.Clone();
  RoundToBf16(r.data(), r.numel());
  return r;
}

using Kernel = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs `kernel` on `threads` threads in bf16, and expects every element of
// its result to be the float32 result on the operands rounded to bf16 (and
// not the float32 result on the operands as they are).
void ExpectBf16Products(const std::string& what, int threads,
                        const std::vector<Tensor>& operands,
                        const Kernel& kernel) {
  SCOPED_TRACE(what + " on " + std::to_string(threads) + " threads");
  const ScopedThreads scope(threads);
  std::vector<Tensor> rounded;
  for (const Tensor& t : operands) rounded.push_back(RoundedToBf16(t));
  const std::vector<float> float32 = kernel(operands).ToVector();
  const std::vector<float> want = kernel(rounded).ToVector();
  std::vector<float> got;
  {
    const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
    got = kernel(operands).ToVector();
  }
  ASSERT_EQ(got.size(), want.size());
  int64_t unchanged = 0, wrong = 0, first = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    if (want[i] == float32[i]) ++unchanged;
    if (got[i] != want[i]) {
      ++wrong;
      if (first < 0) first = static_cast<int64_t>(i);
    }
  }
  ASSERT_EQ(unchanged, 0) << "operands whose rounding to bf16 changes nothing";
  if (wrong > 0) {
    std::ostringstream os;
    os << std::setprecision(9) << wrong << " of " << got.size()
       << " elements are not the products of bf16 operands; the first, ["
       << first << "]: got " << got[first] << ", want " << want[first]
       << " (float32: " << float32[first] << ")";
    ADD_FAILURE() << os.str();
  }
}

// One convolution: the forward pass and the gradients that go through the
// GEMM (input and weight).
void ExpectConvBf16(const std::string& what, int threads, const Shape& x,
                    const Shape& w, const Conv2dParams& p) {
  const Shape y_shape{x[0], w[0], ConvOutSize(x[2], w[2], p.stride_h, p.pad_h),
                      ConvOutSize(x[3], w[3], p.stride_w, p.pad_w)};
  ExpectBf16Products(what + ", forward", threads,
                     {Operand(x, 1), Operand(w, 2)},
                     [&](const std::vector<Tensor>& v) {
                       return Conv2dForward(v[0], v[1], Tensor(), p);
                     });
  ExpectBf16Products(what + ", input gradient", threads,
                     {Operand(y_shape, 3), Operand(w, 2)},
                     [&](const std::vector<Tensor>& v) {
                       return Conv2dBackwardInput(v[0], v[1], x, p);
                     });
  ExpectBf16Products(what + ", weight gradient", threads,
                     {Operand(y_shape, 3), Operand(x, 1)},
                     [&](const std::vector<Tensor>& v) {
                       return Conv2dBackwardWeight(v[0], v[1], w, p);
                     });
}

Conv2dParams Params(int64_t stride, int64_t pad) {
  Conv2dParams p;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  return p;
}

// The batches and maps below take each parallel region of conv.cc on 2 and
// 4 threads, on every kernel path (GEMM tiles of 16, 32 or 64 columns).
TEST(Bf16InParallel, ConvolutionOneImagePerThread) {
  // 32x32 maps: a GEMM per image, images in parallel (ForEachImage; the
  // weight gradient's per-thread partial sums).
  for (int threads : {2, 4}) {
    ExpectConvBf16("x [8, 2, 32, 32] * w [4, 2, 3, 3]", threads, {8, 2, 32, 32},
                   {4, 2, 3, 3}, Params(1, 1));
  }
}

TEST(Bf16InParallel, ConvolutionChunksOfImages) {
  // 3x3 output maps: several images per GEMM, chunks in parallel for the
  // forward pass and the input gradient (RunChunks); the weight gradient is
  // one chunk, its GemmNT split between the threads.
  // 8x8 output maps: the weight gradient's chunks in parallel.
  for (int threads : {2, 4}) {
    ExpectConvBf16("x [64, 3, 6, 6] * w [4, 3, 3, 3] stride 2", threads,
                   {64, 3, 6, 6}, {4, 3, 3, 3}, Params(2, 1));
    ExpectConvBf16("x [64, 3, 8, 8] * w [4, 3, 3, 3]", threads, {64, 3, 8, 8},
                   {4, 3, 3, 3}, Params(1, 1));
  }
}

TEST(Bf16InParallel, ConvolutionInputGradientAsFlippedConvolution) {
  // 16 channels or more, stride 1: the input gradient is a forward
  // convolution of dy with the flipped kernels.
  for (int threads : {2, 4}) {
    ExpectConvBf16("x [8, 16, 8, 8] * w [8, 16, 3, 3]", threads, {8, 16, 8, 8},
                   {8, 16, 3, 3}, Params(1, 1));
  }
}

TEST(Bf16InParallel, BatchedMatMul) {
  // A GEMM per matrix of the batch, the batch in parallel (ops.cc).
  for (int threads : {2, 4}) {
    ExpectBf16Products(
        "MatMul [8, 32, 48] x [8, 48, 40]", threads,
        {Operand({8, 32, 48}, 1), Operand({8, 48, 40}, 2)},
        [](const std::vector<Tensor>& v) { return ops::MatMul(v[0], v[1]); });
    ExpectBf16Products(
        "MatMul [8, 32, 48] x [48, 40]", threads,
        {Operand({8, 32, 48}, 1), Operand({48, 40}, 2)},
        [](const std::vector<Tensor>& v) { return ops::MatMul(v[0], v[1]); });
  }
}

TEST(Bf16InParallel, Linear) {
  // GEMMs of 2^23 multiply-adds: split between the threads by the GEMM
  // itself (the forward pass's A, 2^16 floats, packed by all of them).
  const Tensor x = Operand({256, 256}, 1), w = Operand({128, 256}, 2);
  const Tensor dy = Operand({256, 128}, 3);
  for (int threads : {2, 4}) {
    ExpectBf16Products("LinearForward", threads, {x, w},
                       [](const std::vector<Tensor>& v) {
                         return LinearForward(v[0], v[1], Tensor());
                       });
    ExpectBf16Products("LinearBackwardInput", threads, {dy, w},
                       [](const std::vector<Tensor>& v) {
                         return LinearBackwardInput(v[0], v[1]);
                       });
    ExpectBf16Products("LinearBackwardWeight", threads, {dy, x},
                       [](const std::vector<Tensor>& v) {
                         return LinearBackwardWeight(v[0], v[1]);
                       });
  }
}

}  // namespace
}  // namespace dive::kernel_internal
