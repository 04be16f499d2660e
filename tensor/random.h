// File: tensor/random.h
// -----------------------------------------------------------------------------
//
// Seeded random tensors. A `Generator` is a small deterministic engine
// (64-bit Mersenne Twister): the same seed gives the same numbers on every
// run, independent of the thread count. `DefaultGenerator()` is the
// process-wide one that `ManualSeed` resets, like `torch.manual_seed`.
//
// Example:
//
//   dive::ManualSeed(42);
//   Tensor w = dive::Normal({256, 784}, 0.0f, 0.01f);
//   Tensor u = dive::Uniform({10}, -1.0f, 1.0f);
//
//   dive::Generator gen(7);           // an independent stream
//   std::vector<int64_t> order = gen.Permutation(60000);

#ifndef TENSOR_RANDOM_H_
#define TENSOR_RANDOM_H_

#include <cstdint>
#include <initializer_list>
#include <random>
#include <vector>

#include "tensor/tensor.h"

namespace dive {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : engine_(seed) {}
  void Seed(uint64_t seed) { engine_.seed(seed); }

  float NextUniform(float lo, float hi);
  float NextNormal(float mean, float stddev);
  // A uniformly random integer in [0, n).
  int64_t NextIndex(int64_t n);
  // A random permutation of 0..n-1.
  std::vector<int64_t> Permutation(int64_t n);

  Tensor Uniform(const Shape& shape, float lo, float hi);
  Tensor Normal(const Shape& shape, float mean, float stddev);
  // 1.0f with probability p, else 0.0f.
  Tensor Bernoulli(const Shape& shape, float p);

 private:
  std::mt19937_64 engine_;
};

Generator& DefaultGenerator();

// One well-spread seed from several values (SplitMix64's finalizer chained
// over them): distinct streams for (seed, epoch, batch, ...) tuples.
uint64_t CombineSeeds(std::initializer_list<uint64_t> values);
void ManualSeed(uint64_t seed);

// Shorthands on the default generator.
Tensor Uniform(const Shape& shape, float lo, float hi);
Tensor Normal(const Shape& shape, float mean, float stddev);

}  // namespace dive

#endif  // TENSOR_RANDOM_H_
