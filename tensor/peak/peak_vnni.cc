// PeakVnniDotLoop (tensor/peak/peak.h), compiled with -mavx512vnni whatever
// the build's -march; called only where the CPU has AVX512-VNNI.

#include <immintrin.h>

#include <cstdint>

#include "tensor/peak/peak.h"
#include "tensor/peak/peak_chains.h"

namespace dive {

int64_t PeakVnniDotLoop(int64_t iterations) {
  // kPeakChains independent accumulators, as the FMA loop; small operands,
  // so that no chain's int32 sums wrap within a measurement.
  const __m512i a = _mm512_set1_epi8(1);
  const __m512i b = _mm512_set1_epi8(-1);
  RunPeakChains(iterations, _mm512_setzero_si512(),
                [&](__m512i c) { return _mm512_dpbusd_epi32(c, a, b); });
  return iterations * kPeakChains * 16 * 4 * 2;
}

}  // namespace dive
