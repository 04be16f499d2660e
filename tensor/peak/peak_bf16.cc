// PeakBf16DotLoop (tensor/peak/peak.h), compiled with -mavx512bf16 whatever the
// build's -march; called only where the CPU has AVX512-BF16.

#include <immintrin.h>

#include <cstdint>

#include "tensor/peak/peak.h"
#include "tensor/peak/peak_chains.h"

namespace dive {

int64_t PeakBf16DotLoop(int64_t iterations) {
  // kPeakChains independent accumulators, as the FMA loop.
  const __m512bh a = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3F80));
  const __m512bh b = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3800));
  RunPeakChains(iterations, _mm512_setzero_ps(),
                [&](__m512 c) { return _mm512_dpbf16_ps(c, a, b); });
  return iterations * kPeakChains * 16 * 4;
}

}  // namespace dive
