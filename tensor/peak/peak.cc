#include "tensor/peak/peak.h"

#include <algorithm>
#include <chrono>
#include <memory>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "tensor/peak/peak_chains.h"

namespace dive {
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

namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

double MeasurePeakFlops(int64_t (*loop)(int64_t), int threads) {
  double best = 0;
  for (int round = 0; round < 10; ++round) {
    const auto start = std::chrono::steady_clock::now();
    const int64_t flops = RunOnThreads(loop, 1 << 21, threads);
    best = std::max(best, flops / SecondsSince(start));
  }
  return best;
}

double MeasureTriadBandwidth(int64_t bytes_per_array, int threads) {
  const int64_t n = std::max<int64_t>(bytes_per_array / 4, threads);
  std::unique_ptr<float[]> a(new float[n]), b(new float[n]), c(new float[n]);
  double best = 0;
  for (int pass = 0; pass < 6; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    int64_t bytes = 0;
#pragma omp parallel num_threads(threads) reduction(+ : bytes)
    {
#if defined(_OPENMP)
      const int t = omp_get_thread_num(), count = omp_get_num_threads();
#else
      const int t = 0, count = 1;
#endif
      const int64_t begin = n * t / count, end = n * (t + 1) / count;
      // The first pass writes b and c too, so that every page is touched
      // by the thread that will read it.
      if (pass == 0) {
        std::fill(b.get() + begin, b.get() + end, 1.0f);
        std::fill(c.get() + begin, c.get() + end, 2.0f);
      }
      bytes += TriadLoop(a.get() + begin, b.get() + begin, c.get() + begin,
                         end - begin, 0.5f);
    }
    if (pass > 0) best = std::max(best, bytes / SecondsSince(start));
  }
  return best;
}

}  // namespace dive
