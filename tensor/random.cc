#include "tensor/random.h"

#include <cmath>
#include <numeric>

namespace dive {

// Hand-written transforms (not std::*_distribution, whose algorithms differ
// between standard libraries) keep streams identical everywhere.
float Generator::NextUniform(float lo, float hi) {
  // 24 random bits -> [0, 1) exactly representable in float.
  const float u = static_cast<float>(engine_() >> 40) * (1.0f / 16777216.0f);
  return lo + (hi - lo) * u;
}

float Generator::NextNormal(float mean, float stddev) {
  // Box-Muller on two uniforms in (0, 1].
  const double u1 = (static_cast<double>(engine_() >> 11) + 1.0) * 0x1.0p-53;
  const double u2 = static_cast<double>(engine_() >> 11) * 0x1.0p-53;
  const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  return mean + stddev * static_cast<float>(z);
}

int64_t Generator::NextIndex(int64_t n) {
  CHECK_GT(n, 0) << "NextIndex(" << n << ")";
  // Rejection sampling for an unbiased result.
  const uint64_t un = static_cast<uint64_t>(n);
  const uint64_t limit = UINT64_MAX - UINT64_MAX % un;
  uint64_t r;
  do {
    r = engine_();
  } while (r >= limit);
  return static_cast<int64_t>(r % un);
}

std::vector<int64_t> Generator::Permutation(int64_t n) {
  std::vector<int64_t> p(n);
  std::iota(p.begin(), p.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[NextIndex(i + 1)]);
  return p;
}

Tensor Generator::Uniform(const Shape& shape, float lo, float hi) {
  Tensor t = Tensor::Empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = NextUniform(lo, hi);
  return t;
}

Tensor Generator::Normal(const Shape& shape, float mean, float stddev) {
  Tensor t = Tensor::Empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = NextNormal(mean, stddev);
  return t;
}

Tensor Generator::Bernoulli(const Shape& shape, float prob) {
  Tensor t = Tensor::Empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) {
    p[i] = NextUniform(0.0f, 1.0f) < prob ? 1.0f : 0.0f;
  }
  return t;
}

Generator& DefaultGenerator() {
  static Generator* gen = new Generator(0);
  return *gen;
}

namespace {

// SplitMix64's finalizer: a bijective mix, so distinct inputs give distinct,
// well-spread seeds.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t CombineSeeds(std::initializer_list<uint64_t> values) {
  uint64_t h = 0;
  for (uint64_t v : values) h = Mix(h ^ Mix(v));
  return h;
}

void ManualSeed(uint64_t seed) { DefaultGenerator().Seed(seed); }

Tensor Uniform(const Shape& shape, float lo, float hi) {
  return DefaultGenerator().Uniform(shape, lo, hi);
}

Tensor Normal(const Shape& shape, float mean, float stddev) {
  return DefaultGenerator().Normal(shape, mean, stddev);
}

}  // namespace dive
