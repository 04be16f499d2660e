// PeakBf16DotLoop (bench/peak.h), compiled with -mavx512bf16 whatever the
// build's -march; called only where the CPU has AVX512-BF16.

#include <immintrin.h>

#include <cstdint>

#include "bench/peak.h"

namespace dive::bench {

int64_t PeakBf16DotLoop(int64_t iterations) {
  // 12 independent accumulators, as the FMA loop: enough to cover
  // VDPBF16PS's latency times its throughput.
  const __m512bh a = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3F80));
  const __m512bh b = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3800));
  __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0,
         c5 = c0, c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  for (int64_t i = 0; i < iterations; ++i) {
    c0 = _mm512_dpbf16_ps(c0, a, b);
    c1 = _mm512_dpbf16_ps(c1, a, b);
    c2 = _mm512_dpbf16_ps(c2, a, b);
    c3 = _mm512_dpbf16_ps(c3, a, b);
    c4 = _mm512_dpbf16_ps(c4, a, b);
    c5 = _mm512_dpbf16_ps(c5, a, b);
    c6 = _mm512_dpbf16_ps(c6, a, b);
    c7 = _mm512_dpbf16_ps(c7, a, b);
    c8 = _mm512_dpbf16_ps(c8, a, b);
    c9 = _mm512_dpbf16_ps(c9, a, b);
    c10 = _mm512_dpbf16_ps(c10, a, b);
    c11 = _mm512_dpbf16_ps(c11, a, b);
    // Keep every accumulator live in a register and the loop un-elided.
    asm volatile(""
                 : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5),
                   "+v"(c6), "+v"(c7), "+v"(c8), "+v"(c9), "+v"(c10),
                   "+v"(c11));
  }
  return iterations * 12 * 16 * 4;
}

}  // namespace dive::bench
