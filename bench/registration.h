// File: bench/registration.h
// -----------------------------------------------------------------------------
//
// How the kernel benchmark binaries (kernel_benchmark.cc, int8_benchmark.cc)
// register a benchmark at one thread and at all cores, with the kernels'
// thread count (SetNumThreads, tensor/tensor.h) set to match for each run.
//
// The names registered here are what CI's bench/regression.py looks up in
// bench/baselines/*.json: <name>/threads:1 and, on a machine with more than
// one core, <name>/threads:<cores>. Keep them so.
//
// Example:
//
//   const int registered = [] {
//     Register("BM_Relu/65536", [](benchmark::State& state) { ... });
//     return 0;
//   }();  // BM_Relu/65536/threads:1 and BM_Relu/65536/threads:2

#ifndef BENCH_REGISTRATION_H_
#define BENCH_REGISTRATION_H_

#include <functional>
#include <string>

#include "benchmark/benchmark.h"

namespace dive::bench {

// Cores()
//
// The number of cores the kernels may use (std::thread::hardware_concurrency,
// at least 1).
int Cores();

// Register()
//
// Registers `fn` as <name>/threads:1 and <name>/threads:<Cores()> (the second
// only where Cores() > 1), timed in real time; `fn` runs with that many
// kernel threads, and the default thread count is restored after it.
void Register(const std::string& name,
              std::function<void(benchmark::State&)> fn);

}  // namespace dive::bench

#endif  // BENCH_REGISTRATION_H_
