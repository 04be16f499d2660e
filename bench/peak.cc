#include "bench/peak.h"

#include "bench/peak_chains.h"

namespace dive::bench {
namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

}  // namespace

int64_t PeakFmaLoop(int64_t iterations) {
  Vec a, b;
  for (int l = 0; l < kLanes; ++l) {
    a[l] = 0.999f;
    b[l] = 1e-4f;
  }
  RunPeakChains(iterations, a, [&](Vec c) { return c * a + b; });
  return iterations * kPeakChains * kLanes * 2;
}

int64_t RunOnThreads(int64_t (*loop)(int64_t), int64_t iterations,
                     int threads) {
  int64_t total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  total += loop(iterations);
  return total;
}

int64_t TriadLoop(float* a, const float* b, const float* c, int64_t n,
                  float scalar) {
  for (int64_t i = 0; i < n; ++i) a[i] = b[i] + scalar * c[i];
  return 12 * n;
}

}  // namespace dive::bench
