// File: bench/peak_fma.h
// -----------------------------------------------------------------------------
//
// The machine's reference speed: a register-only loop of independent fused
// multiply-adds at the widest vector width the build targets. It touches no
// memory, so it measures the cores' peak FLOP rate; kernel benchmarks report
// their speed next to it, and CI regression checks compare kernel/peak ratios
// measured in the same run, which cancels out how busy or fast the machine is.

#ifndef BENCH_PEAK_FMA_H_
#define BENCH_PEAK_FMA_H_

#include <cstdint>

namespace dive::bench {

// Runs `iterations` rounds of FMAs on one thread and returns the number of
// floating-point operations performed (2 per lane per FMA).
int64_t PeakFmaLoop(int64_t iterations);

}  // namespace dive::bench

#endif  // BENCH_PEAK_FMA_H_
