// The machine's reference speeds (tensor/peak/peak.h), linked into every
// benchmark binary (alwayslink) so that each run reports them next to its own numbers:
//
//   BM_PeakFma/threads   register-only FMA peak of 1 or 2 cores, "FLOPS"
//                        counter (FLOP/s); bench/regression.py divides
//                        compute-bound kernels by BM_PeakFma/1.
//   BM_PeakBf16/threads  register-only VDPBF16PS peak of 1 or 2 cores, on
//                        CPUs with AVX512-BF16 (regression.py divides the
//                        bf16 GEMM by BM_PeakBf16/1)
//   BM_PeakTriad/bytes   STREAM triad on one core over three arrays of
//                        `bytes` in all, bytes_per_second; regression.py
//                        divides memory-bound kernels by BM_PeakTriad/6291456
//                        (6 MiB, the footprint of the LeNet-sized pooling and
//                        batch-norm benchmarks).
//
// It also names the CPU, its features and the kernel path (tensor/cpu.h;
// DIVE_ISA picks a lower one) in the output's context.

#include <cstdint>
#include <vector>

#include "tensor/peak/peak.h"
#include "benchmark/benchmark.h"
#include "tensor/cpu.h"

namespace dive::bench {
namespace {

// `loop` on state.range(0) threads at once; FLOP/s in the "FLOPS" counter.
void RunPeak(benchmark::State& state, int64_t (*loop)(int64_t)) {
  const int threads = static_cast<int>(state.range(0));
  int64_t flops = 0;
  for (auto _ : state) flops += RunOnThreads(loop, 1 << 20, threads);
  state.counters["FLOPS"] = benchmark::Counter(static_cast<double>(flops),
                                               benchmark::Counter::kIsRate);
}

void BM_PeakFma(benchmark::State& state) { RunPeak(state, PeakFmaLoop); }
BENCHMARK(BM_PeakFma)->Arg(1)->Arg(2)->UseRealTime();

const bool kBf16PeakRegistered = [] {
  if (DetectedCpu().avx512_bf16) {
    benchmark::RegisterBenchmark("BM_PeakBf16", [](benchmark::State& state) {
      RunPeak(state, PeakBf16DotLoop);
    })->Arg(1)->Arg(2)->UseRealTime();
  }
  return true;
}();

void BM_PeakTriad(benchmark::State& state) {
  const int64_t n = state.range(0) / (3 * sizeof(float));
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f);
  int64_t bytes = 0;
  for (auto _ : state) {
    bytes += TriadLoop(a.data(), b.data(), c.data(), n, 0.5f);
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_PeakTriad)->Arg(6 << 20)->UseRealTime();

// The CPU and the kernel path in every run's context (the header of the
// console output, "context" of --benchmark_format=json).
const bool kCpuInContext = [] {
  benchmark::AddCustomContext("dive_cpu", CpuDescription());
  return true;
}();

}  // namespace
}  // namespace dive::bench
