#include "datasets/sampler.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dive::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<int64_t> Sorted(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(EpochSamplerTest, WithoutShuffleVisitsInOrder) {
  SamplerOptions o;
  o.shuffle = false;
  EXPECT_THAT(EpochSampler(5, o).Order(3), ElementsAre(0, 1, 2, 3, 4));
}

TEST(EpochSamplerTest, EachEpochIsAPermutationFixedBySeedAndEpoch) {
  SamplerOptions o;
  o.seed = 7;
  const EpochSampler a(100, o), b(100, o);
  std::vector<int64_t> all(100);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(Sorted(a.Order(0)), all);
  EXPECT_EQ(a.Order(4), b.Order(4));
  EXPECT_NE(a.Order(0), a.Order(1));
  o.seed = 8;
  EXPECT_NE(EpochSampler(100, o).Order(0), a.Order(0));
}

TEST(EpochSamplerTest, ShardsAreDisjointAndCover) {
  SamplerOptions o;
  o.num_shards = 3;
  std::vector<int64_t> seen;
  for (int64_t k = 0; k < 3; ++k) {
    o.shard_index = k;
    const EpochSampler s(10, o);
    const std::vector<int64_t> order = s.Order(2);
    EXPECT_EQ(static_cast<int64_t>(order.size()), s.num_examples());
    seen.insert(seen.end(), order.begin(), order.end());
  }
  EXPECT_THAT(Sorted(seen), ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9));
}

TEST(EpochSamplerTest, DropLastGivesEveryShardTheSameCount) {
  SamplerOptions o;
  o.num_shards = 3;
  o.drop_last = true;
  for (int64_t k = 0; k < 3; ++k) {
    o.shard_index = k;
    EXPECT_EQ(EpochSampler(10, o).Order(0).size(), 3u) << "shard " << k;
  }
}

TEST(EpochSamplerTest, AGlobalBatchHoldsTheSameExamplesOnAnyShardCount) {
  // What a training run resumed on another number of ranks relies on
  // (train/train_state.h's RankCountChange): with a global batch of B split
  // into B / S per shard, batch b of the S shards together is batch b of one
  // shard; only which shard takes which example changes.
  constexpr int64_t kSize = 100, kBatch = 12;
  SamplerOptions one;
  one.seed = 5;
  const std::vector<int64_t> whole = EpochSampler(kSize, one).Order(3);
  for (int64_t shards : {2, 3, 4}) {
    for (int64_t b = 0; b < kSize / kBatch; ++b) {
      std::vector<int64_t> batch;
      for (int64_t k = 0; k < shards; ++k) {
        SamplerOptions o = one;
        o.num_shards = shards;
        o.shard_index = k;
        o.drop_last = true;
        const std::vector<int64_t> mine = EpochSampler(kSize, o).Order(3);
        const int64_t per = kBatch / shards;
        batch.insert(batch.end(), mine.begin() + b * per,
                     mine.begin() + (b + 1) * per);
      }
      EXPECT_EQ(Sorted(batch),
                Sorted(std::vector<int64_t>(whole.begin() + b * kBatch,
                                            whole.begin() + (b + 1) * kBatch)))
          << shards << " shards, batch " << b;
    }
  }
}

TEST(EpochSamplerTest, ValidateNamesTheBadOption) {
  SamplerOptions o;
  o.num_shards = 0;
  EXPECT_THAT(EpochSampler::Validate(o).message(), HasSubstr("num_shards"));
  o.num_shards = 2;
  o.shard_index = 2;
  EXPECT_THAT(EpochSampler::Validate(o).message(),
              HasSubstr("shard_index 2 is not in [0, 2)"));
  o.shard_index = 1;
  EXPECT_TRUE(EpochSampler::Validate(o).ok());
}

}  // namespace
}  // namespace dive::data
