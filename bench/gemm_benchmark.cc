// GEMM speed against the machine's peak:
//
//   bazel run //bench:gemm_benchmark
//
// BM_PeakFma/threads is the register-only FMA peak of 1 or 2 cores (see
// tensor/peak/peak.h; registered by peak_benchmark.cc), BM_PeakBf16 the
// VDPBF16PS one on CPUs with AVX512-BF16; BM_Gemm/n/threads is dive::Gemm on n x n x n
// float32 matrices and on the shapes convolution lowers to, BM_GemmBf16 the
// same with bf16 products (MatmulPrecision::kBfloat16: the AVX512-BF16
// kernel where the CPU has it, rounded operands on the float32 kernels
// elsewhere). All report GFLOP/s ("FLOPS" counter, in G/s with
// --benchmark_counters_tabular=true).

#include <cblas.h>

#include "benchmark/benchmark.h"
#include "tensor/gemm.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::bench {
namespace {

// C[m, n] = A[m, k] * B[k, n], row-major, through dive::Gemm or, with
// `openblas`, OpenBLAS's cblas_sgemm on the same buffers.
void RunGemm(benchmark::State& state, int64_t m, int64_t n, int64_t k,
             int threads, bool openblas = false,
             MatmulPrecision precision = MatmulPrecision::kFloat32) {
  SetNumThreads(threads);
  const ScopedMatmulPrecision scope(precision);
  Generator gen(1);
  const Tensor a = gen.Uniform({m, k}, -1, 1), b = gen.Uniform({k, n}, -1, 1);
  Tensor c = Tensor::Empty({m, n});
  for (auto _ : state) {
    if (openblas) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f,
                  a.data(), k, b.data(), n, 0.0f, c.data(), n);
    } else {
      Gemm(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f,
           c.data(), n);
    }
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["FLOPS"] = benchmark::Counter(
      2.0 * m * n * k * state.iterations(), benchmark::Counter::kIsRate);
  SetNumThreads(0);
}

void BM_Gemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  RunGemm(state, n, n, n, static_cast<int>(state.range(1)));
}
BENCHMARK(BM_Gemm)
    ->ArgsProduct({{256, 512, 1024}, {1, 2}})
    ->ArgNames({"n", "threads"})
    ->UseRealTime();

void BM_GemmBf16(benchmark::State& state) {
  const int64_t n = state.range(0);
  RunGemm(state, n, n, n, static_cast<int>(state.range(1)), false,
          MatmulPrecision::kBfloat16);
}
BENCHMARK(BM_GemmBf16)
    ->ArgsProduct({{256, 512, 1024}, {1, 2}})
    ->ArgNames({"n", "threads"})
    ->UseRealTime();

void BM_OpenBlasSgemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  RunGemm(state, n, n, n, static_cast<int>(state.range(1)), /*openblas=*/true);
}
BENCHMARK(BM_OpenBlasSgemm)
    ->ArgsProduct({{256, 512, 1024}, {1, 2}})
    ->ArgNames({"n", "threads"})
    ->UseRealTime();

// The GEMMs convolution runs at the bench settings (tensor/conv.cc): C [OC,
// images x OH*OW] = W [OC, C*KH*KW] x col, images side by side where maps are
// small. Ours (openblas:0), then OpenBLAS on the same buffers (openblas:1).
void BM_GemmConvShape(benchmark::State& state) {
  RunGemm(state, state.range(0), state.range(1), state.range(2),
          static_cast<int>(state.range(3)), /*openblas=*/state.range(4) != 0);
}
BENCHMARK(BM_GemmConvShape)
    ->ArgsProduct({{16}, {1600}, {150}, {1}, {0, 1}})  // LeNet conv2, 16 images
    ->ArgsProduct({{64}, {576}, {576}, {1}, {0, 1}})   // ResNet-18 @96, 24x24
    ->ArgsProduct({{256}, {1600}, {2400}, {1}, {0, 1}})    // AlexNet @96 conv2
    ->ArgsProduct({{512}, {288}, {4608}, {1, 2}, {0, 1}})  // ResNet 3x3 maps
    ->ArgNames({"m", "n", "k", "threads", "openblas"})
    ->UseRealTime();

// The same shapes with bf16 products (ours only).
void BM_GemmConvShapeBf16(benchmark::State& state) {
  RunGemm(state, state.range(0), state.range(1), state.range(2),
          static_cast<int>(state.range(3)), false, MatmulPrecision::kBfloat16);
}
BENCHMARK(BM_GemmConvShapeBf16)
    ->Args({16, 1600, 150, 1})
    ->Args({64, 576, 576, 1})
    ->Args({256, 1600, 2400, 1})
    ->Args({512, 288, 4608, 1})
    ->Args({512, 288, 4608, 2})
    ->ArgNames({"m", "n", "k", "threads"})
    ->UseRealTime();

// GemmNT (the weight gradient's C = A * B^T, B served by rows) on the weight
// gradient shapes: [OC, pixels] x [CKK, pixels]^T, float32 and bf16.
void RunGemmNT(benchmark::State& state, MatmulPrecision precision) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  SetNumThreads(1);
  const ScopedMatmulPrecision scope(precision);
  Generator gen(1);
  const Tensor a = gen.Uniform({m, k}, -1, 1), b = gen.Uniform({n, k}, -1, 1);
  Tensor c = Tensor::Zeros({m, n});
  const float* pb = b.data();
  for (auto _ : state) {
    GemmNT(
        m, n, k, a.data(), k,
        [&](int64_t r0, int64_t rn, int64_t c0, int64_t cn, float* dst,
            int64_t ld) {
          for (int64_t r = 0; r < rn; ++r) {
            std::copy(pb + (r0 + r) * k + c0, pb + (r0 + r) * k + c0 + cn,
                      dst + r * ld);
          }
        },
        1.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["FLOPS"] = benchmark::Counter(
      2.0 * m * n * k * state.iterations(), benchmark::Counter::kIsRate);
  SetNumThreads(0);
}

void BM_GemmNT(benchmark::State& state) {
  RunGemmNT(state, MatmulPrecision::kFloat32);
}
void BM_GemmNTBf16(benchmark::State& state) {
  RunGemmNT(state, MatmulPrecision::kBfloat16);
}
void NtShapes(benchmark::internal::Benchmark* b) {
  b->Args({64, 576, 576})     // ResNet-18 @96, 64 channels 3x3, 24x24
      ->Args({6, 25, 784})    // LeNet conv1
      ->Args({256, 2400, 729})  // AlexNet conv2
      ->ArgNames({"m", "n", "k"})
      ->UseRealTime();
}
BENCHMARK(BM_GemmNT)->Apply(NtShapes);
BENCHMARK(BM_GemmNTBf16)->Apply(NtShapes);

}  // namespace
}  // namespace dive::bench
