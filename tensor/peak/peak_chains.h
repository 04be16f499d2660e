// File: tensor/peak/peak_chains.h
// -----------------------------------------------------------------------------
//
// Internal to the peak loops of tensor/peak/peak.h: what PeakFmaLoop and
// PeakBf16DotLoop share. Both run one vector instruction on kPeakChains
// independent accumulators, enough to cover the instruction's latency times
// its throughput, and keep every accumulator in a register so that the loop
// touches no memory and is not elided.
//
// Example:
//
//   RunPeakChains(iterations, a, [&](Vec c) { return c * a + b; });

#ifndef TENSOR_PEAK_PEAK_CHAINS_H_
#define TENSOR_PEAK_PEAK_CHAINS_H_

#include <cstddef>
#include <cstdint>
#include <utility>

namespace dive {

// Independent accumulators of the peak loops.
inline constexpr int kPeakChains = 12;

namespace peak_internal {

// An empty asm that takes `v` in a vector register and may change it: the
// compiler must compute it each round and cannot hoist or drop the loop.
template <typename V>
__attribute__((always_inline)) inline void KeepInRegister(V& v) {
  asm volatile("" : "+v"(v));
}

template <typename V, typename Step, size_t... K>
__attribute__((always_inline)) inline void RunChains(
    int64_t iterations, V init, Step step, std::index_sequence<K...>) {
  V c[sizeof...(K)] = {((void)K, init)...};
  for (int64_t i = 0; i < iterations; ++i) {
    ((c[K] = step(c[K])), ...);
    (KeepInRegister(c[K]), ...);
  }
}

}  // namespace peak_internal

// RunPeakChains()
//
// `iterations` rounds of c = step(c) on each of kPeakChains accumulators that
// start at `init`, unrolled: one round is kPeakChains independent
// instructions.
template <typename V, typename Step>
void RunPeakChains(int64_t iterations, V init, Step step) {
  peak_internal::RunChains(iterations, init, step,
                           std::make_index_sequence<kPeakChains>());
}

}  // namespace dive

#endif  // TENSOR_PEAK_PEAK_CHAINS_H_
