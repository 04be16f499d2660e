// File: datasets/sampler.h
// -----------------------------------------------------------------------------
//
// `EpochSampler` says which dataset indices one process visits in each epoch,
// in which order: PyTorch's `RandomSampler` (or `SequentialSampler`) with a
// `DistributedSampler` on top. Each epoch's order is a permutation drawn from
// (seed, epoch) alone, so runs are reproducible and every epoch differs, and
// shard k of S takes positions k, k + S, k + 2S, ... of it, so shards are
// disjoint and together cover the dataset.
//
// Example (rank 1 of 4 of a data-parallel run):
//
//   dive::data::SamplerOptions o;
//   o.seed = 7;
//   o.num_shards = 4;
//   o.shard_index = 1;
//   dive::data::EpochSampler sampler(/*dataset_size=*/60000, o);
//   std::vector<int64_t> order = sampler.Order(/*epoch=*/3);  // 15000 indices

#ifndef DATASETS_SAMPLER_H_
#define DATASETS_SAMPLER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace dive::data {

struct SamplerOptions {
  // Visit the examples in a new random order each epoch (else 0, 1, ...).
  bool shuffle = true;
  // Seeds the shuffle.
  uint64_t seed = 0;
  // Drop the last N % num_shards examples of each epoch's order, so that
  // every shard gets the same number.
  bool drop_last = false;
  // This process's part of the data for data-parallel training.
  int64_t num_shards = 1;
  int64_t shard_index = 0;
};

class EpochSampler {
 public:
  // Validate()
  //
  // InvalidArgument for num_shards <= 0 or shard_index outside
  // [0, num_shards).
  static absl::Status Validate(const SamplerOptions& options);

  // A sampler over indices [0, dataset_size); CHECK-fails unless
  // Validate(options) is OK and dataset_size >= 0.
  EpochSampler(int64_t dataset_size, const SamplerOptions& options);

  // The number of indices Order returns for every epoch.
  int64_t num_examples() const;

  // Order()
  //
  // The indices this shard visits in `epoch`, in order.
  std::vector<int64_t> Order(int64_t epoch) const;

  const SamplerOptions& options() const { return options_; }

 private:
  int64_t size_;
  SamplerOptions options_;
};

}  // namespace dive::data

#endif  // DATASETS_SAMPLER_H_
