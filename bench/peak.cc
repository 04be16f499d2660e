#include "bench/peak.h"

namespace dive::bench {
namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
// Enough independent accumulators to cover FMA latency x throughput.
constexpr int kAccumulators = 12;

typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

}  // namespace

int64_t PeakFmaLoop(int64_t iterations) {
  Vec a, b;
  for (int l = 0; l < kLanes; ++l) {
    a[l] = 0.999f;
    b[l] = 1e-4f;
  }
  Vec c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a, c8 = a,
      c9 = a, c10 = a, c11 = a;
  for (int64_t i = 0; i < iterations; ++i) {
    c0 = c0 * a + b;
    c1 = c1 * a + b;
    c2 = c2 * a + b;
    c3 = c3 * a + b;
    c4 = c4 * a + b;
    c5 = c5 * a + b;
    c6 = c6 * a + b;
    c7 = c7 * a + b;
    c8 = c8 * a + b;
    c9 = c9 * a + b;
    c10 = c10 * a + b;
    c11 = c11 * a + b;
    // Keep every accumulator live in a register and the loop un-elided.
    asm volatile(""
                 : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5),
                   "+v"(c6), "+v"(c7), "+v"(c8), "+v"(c9), "+v"(c10),
                   "+v"(c11));
  }
  return iterations * kAccumulators * kLanes * 2;
}

int64_t TriadLoop(float* a, const float* b, const float* c, int64_t n,
                  float scalar) {
  for (int64_t i = 0; i < n; ++i) a[i] = b[i] + scalar * c[i];
  return 12 * n;
}

}  // namespace dive::bench
