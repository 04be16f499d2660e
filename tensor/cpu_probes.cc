// The throughput probes of tensor/cpu.cc (see cpu_probes.h). Compiled with
// -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma -mavx512bf16.

#include "tensor/cpu_probes.h"

#include <immintrin.h>

#include <cstdint>

namespace dive::cpu_internal {
namespace {

// `iters` rounds of acc = step(acc) on 12 independent accumulators, their
// sum to *sink.
template <typename Step>
void ChainBurst(int64_t iters, float* sink, Step step) {
  constexpr int kChains = 12;
  __m512 acc[kChains];
  for (__m512& v : acc) v = _mm512_setzero_ps();
  for (int64_t i = 0; i < iters; ++i) {
    for (__m512& v : acc) v = step(v);
  }
  __m512 sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = _mm512_add_ps(sum, acc[j]);
  *sink = _mm512_reduce_add_ps(sum);
}

}  // namespace

void Avx512FmaBurst(int64_t iters, float* sink) {
  const __m512 a = _mm512_set1_ps(1e-3f);
  ChainBurst(iters, sink, [a](__m512 v) { return _mm512_fmadd_ps(a, a, v); });
}

void Avx512Bf16DotBurst(int64_t iters, float* sink) {
  const __m512bh a =
      _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
  ChainBurst(iters, sink, [a](__m512 v) { return _mm512_dpbf16_ps(v, a, a); });
}

}  // namespace dive::cpu_internal
