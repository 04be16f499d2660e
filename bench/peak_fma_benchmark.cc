// BM_PeakFma/threads: the register-only FMA peak of 1 or 2 cores (see
// bench/peak_fma.h), in GFLOP/s ("FLOPS" counter). Linked into every
// benchmark binary (alwayslink) so that each run reports the machine's speed
// next to its own numbers; bench/regression.py divides by BM_PeakFma/1.

#include <omp.h>

#include <cstdint>

#include "bench/peak_fma.h"
#include "benchmark/benchmark.h"

namespace dive::bench {
namespace {

void BM_PeakFma(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  int64_t flops = 0;
  for (auto _ : state) {
    int64_t total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    total += PeakFmaLoop(1 << 20);
    flops += total;
  }
  state.counters["FLOPS"] = benchmark::Counter(static_cast<double>(flops),
                                               benchmark::Counter::kIsRate);
}
BENCHMARK(BM_PeakFma)->Arg(1)->Arg(2)->UseRealTime();

}  // namespace
}  // namespace dive::bench
