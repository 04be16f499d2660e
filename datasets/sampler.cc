#include "datasets/sampler.h"

#include <numeric>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "tensor/random.h"

namespace dive::data {
namespace {

// Keeps the shuffle's stream apart from the other users of the seed.
constexpr uint64_t kShuffleSalt = 0x53485546464c45ULL;  // "SHUFFLE"

}  // namespace

absl::Status EpochSampler::Validate(const SamplerOptions& options) {
  if (options.num_shards <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_shards must be positive, got ", options.num_shards));
  }
  if (options.shard_index < 0 || options.shard_index >= options.num_shards) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard_index ", options.shard_index, " is not in [0, ",
                     options.num_shards, ")"));
  }
  return absl::OkStatus();
}

EpochSampler::EpochSampler(int64_t dataset_size, const SamplerOptions& options)
    : size_(dataset_size), options_(options) {
  CHECK_GE(dataset_size, 0) << "EpochSampler: negative dataset size";
  const absl::Status s = Validate(options);
  CHECK(s.ok()) << "EpochSampler: " << s.message();
}

int64_t EpochSampler::num_examples() const {
  const int64_t s = options_.num_shards;
  if (options_.drop_last) return size_ / s;
  return size_ > options_.shard_index
             ? (size_ - options_.shard_index + s - 1) / s
             : 0;
}

std::vector<int64_t> EpochSampler::Order(int64_t epoch) const {
  std::vector<int64_t> all;
  if (options_.shuffle) {
    Generator gen(CombineSeeds(
        {kShuffleSalt, options_.seed, static_cast<uint64_t>(epoch)}));
    all = gen.Permutation(size_);
  } else {
    all.resize(size_);
    std::iota(all.begin(), all.end(), 0);
  }
  std::vector<int64_t> mine;
  mine.reserve(num_examples());
  const int64_t s = options_.num_shards;
  const int64_t limit = options_.drop_last ? size_ / s * s : size_;
  for (int64_t k = options_.shard_index; k < limit; k += s) {
    mine.push_back(all[k]);
  }
  return mine;
}

}  // namespace dive::data
