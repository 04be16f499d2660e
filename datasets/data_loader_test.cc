#include "datasets/data_loader.h"

#include <algorithm>
#include <memory>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "datasets/dataset.h"
#include "datasets/transforms.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tensor/tensor.h"

namespace dive::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// n images of 1 x 4 x 4; every pixel of image i is i % 256, and label i.
InMemoryDataset Indexed(int64_t n, int64_t side = 4) {
  std::vector<uint8_t> images(n * side * side);
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) {
    std::fill(images.begin() + i * side * side,
              images.begin() + (i + 1) * side * side,
              static_cast<uint8_t>(i % 256));
    labels[i] = i;
  }
  return InMemoryDataset(std::move(images), std::move(labels), 1, side, side);
}

DataLoader MakeLoader(const InMemoryDataset& data, DataLoaderOptions options) {
  absl::StatusOr<DataLoader> loader = DataLoader::Create(data, options);
  CHECK(loader.ok()) << loader.status();
  return std::move(*loader);
}

// All batches of `epoch`.
std::vector<Batch> RunEpoch(DataLoader& loader, int64_t epoch) {
  loader.StartEpoch(epoch);
  std::vector<Batch> batches;
  Batch batch;
  while (loader.Next(&batch)) batches.push_back(batch);
  return batches;
}

// The labels (= dataset indices) of an epoch, in order.
std::vector<int64_t> EpochLabels(DataLoader& loader, int64_t epoch) {
  std::vector<int64_t> out;
  for (const Batch& b : RunEpoch(loader, epoch)) {
    for (int64_t v : b.labels.ToInt64Vector()) out.push_back(v);
  }
  return out;
}

std::vector<int64_t> Sorted(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<int64_t> Range(int64_t n) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

TEST(DataLoaderTest, BatchShapesAndPartialLastBatch) {
  InMemoryDataset data = Indexed(10);
  DataLoader loader = MakeLoader(data, {.batch_size = 4});
  EXPECT_EQ(loader.num_examples(), 10);
  EXPECT_EQ(loader.num_batches(), 3);
  std::vector<Batch> batches = RunEpoch(loader, 0);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].images.shape(), (Shape{4, 1, 4, 4}));
  EXPECT_EQ(batches[0].images.dtype(), DType::kFloat32);
  EXPECT_EQ(batches[0].labels.shape(), (Shape{4}));
  EXPECT_EQ(batches[0].labels.dtype(), DType::kInt64);
  EXPECT_EQ(batches[2].images.shape(), (Shape{2, 1, 4, 4}));
  EXPECT_EQ(batches[2].labels.shape(), (Shape{2}));
  // Images match their labels and are scaled to [0, 1].
  for (const Batch& b : batches) {
    for (int64_t k = 0; k < b.labels.dim(0); ++k) {
      const int64_t i = b.labels.at<int64_t>({k});
      EXPECT_EQ(b.indices[k], i);
      EXPECT_FLOAT_EQ(b.images.at<float>({k, 0, 3, 2}), i / 255.0f);
    }
  }
}

TEST(DataLoaderTest, DropLast) {
  InMemoryDataset data = Indexed(10);
  DataLoader loader =
      MakeLoader(data, {.batch_size = 4, .sampler = {.drop_last = true}});
  EXPECT_EQ(loader.num_batches(), 2);
  std::vector<Batch> batches = RunEpoch(loader, 0);
  ASSERT_EQ(batches.size(), 2u);
  for (const Batch& b : batches) EXPECT_EQ(b.images.dim(0), 4);
}

TEST(DataLoaderTest, EveryIndexExactlyOncePerEpoch) {
  InMemoryDataset data = Indexed(103);
  DataLoader loader = MakeLoader(data, {.batch_size = 8});
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    const std::vector<int64_t> labels = EpochLabels(loader, epoch);
    EXPECT_EQ(Sorted(labels), Range(103)) << "epoch " << epoch;
    EXPECT_EQ(labels, loader.EpochOrder(epoch));
  }
}

TEST(DataLoaderTest, NoShuffleIsInOrder) {
  InMemoryDataset data = Indexed(7);
  DataLoader loader =
      MakeLoader(data, {.batch_size = 3, .sampler = {.shuffle = false}});
  EXPECT_EQ(EpochLabels(loader, 5), Range(7));
}

TEST(DataLoaderTest, ShuffleDeterministicPerSeedAndEpoch) {
  InMemoryDataset data = Indexed(100);
  DataLoaderOptions options;
  options.batch_size = 16;
  options.sampler.seed = 123;
  DataLoader a = MakeLoader(data, options);
  DataLoader b = MakeLoader(data, options);
  const std::vector<int64_t> a0 = EpochLabels(a, 0);
  EXPECT_EQ(a0, EpochLabels(b, 0));  // same seed, same epoch
  EXPECT_NE(a0, Range(100));         // shuffled
  EXPECT_NE(a0, EpochLabels(a, 1));  // a new order each epoch
  EXPECT_EQ(EpochLabels(a, 1), EpochLabels(b, 1));
  EXPECT_EQ(a0, EpochLabels(a, 0));  // replaying an epoch
  options.sampler.seed = 124;
  DataLoader c = MakeLoader(data, options);
  EXPECT_NE(a0, EpochLabels(c, 0));  // another seed
}

TEST(DataLoaderTest, ShardsAreDisjointAndCover) {
  InMemoryDataset data = Indexed(103);
  for (int64_t shards : {1, 2, 3, 4}) {
    std::vector<int64_t> all;
    int64_t total = 0;
    for (int64_t s = 0; s < shards; ++s) {
      DataLoaderOptions options;
      options.batch_size = 5;
      options.sampler.seed = 9;
      options.sampler.num_shards = shards;
      options.sampler.shard_index = s;
      DataLoader loader = MakeLoader(data, options);
      const std::vector<int64_t> labels = EpochLabels(loader, 2);
      EXPECT_EQ(static_cast<int64_t>(labels.size()), loader.num_examples());
      EXPECT_NEAR(loader.num_examples(), 103.0 / shards, 1.0);
      total += loader.num_examples();
      all.insert(all.end(), labels.begin(), labels.end());
    }
    EXPECT_EQ(total, 103);
    EXPECT_EQ(Sorted(all), Range(103)) << shards << " shards";
  }
}

TEST(DataLoaderTest, ShardsWithDropLastAreEqualSized) {
  InMemoryDataset data = Indexed(103);
  std::set<int64_t> seen;
  for (int64_t s = 0; s < 4; ++s) {
    DataLoaderOptions options;
    options.batch_size = 5;
    options.sampler.drop_last = true;
    options.sampler.num_shards = 4;
    options.sampler.shard_index = s;
    DataLoader loader = MakeLoader(data, options);
    EXPECT_EQ(loader.num_examples(), 25);
    EXPECT_EQ(loader.num_batches(), 5);
    for (int64_t v : EpochLabels(loader, 0)) {
      EXPECT_TRUE(seen.insert(v).second) << "index " << v << " seen twice";
    }
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(DataLoaderTest, PrefetchOnAndOffGiveIdenticalBatches) {
  InMemoryDataset data = Indexed(50, 6);
  DataLoaderOptions options;
  options.batch_size = 7;
  options.sampler.seed = 4;
  options.transforms.random_crop = true;
  options.transforms.crop_padding = 2;
  options.transforms.random_horizontal_flip = true;
  options.transforms.resize = 9;
  options.transforms.normalize_mean = {0.5f};
  options.transforms.normalize_std = {0.25f};
  options.prefetch = true;
  DataLoader on = MakeLoader(data, options);
  options.prefetch = false;
  DataLoader off = MakeLoader(data, options);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::vector<Batch> a = RunEpoch(on, epoch);
    std::vector<Batch> b = RunEpoch(off, epoch);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].images.shape(), b[i].images.shape());
      EXPECT_EQ(a[i].images.ToVector(), b[i].images.ToVector());
      EXPECT_EQ(a[i].labels.ToInt64Vector(), b[i].labels.ToInt64Vector());
      EXPECT_EQ(a[i].images.ToVector(),
                on.MakeBatch(epoch, static_cast<int64_t>(i)).images.ToVector());
    }
  }
}

TEST(DataLoaderTest, StartingMidEpochGivesTheRestOfThatEpoch) {
  InMemoryDataset data = Indexed(30, 6);
  DataLoaderOptions options;
  options.batch_size = 4;  // 8 batches, the last of 2 examples
  options.sampler.seed = 9;
  options.transforms.random_crop = true;
  options.transforms.random_horizontal_flip = true;
  for (bool prefetch : {true, false}) {
    options.prefetch = prefetch;
    DataLoader loader = MakeLoader(data, options);
    const std::vector<Batch> whole = RunEpoch(loader, 3);
    ASSERT_EQ(whole.size(), 8u);
    for (int64_t first : {1, 5, 7, 8}) {
      loader.StartEpoch(3, first);
      Batch batch;
      for (int64_t i = first; i < 8; ++i) {
        ASSERT_TRUE(loader.Next(&batch)) << "first " << first << " batch " << i;
        EXPECT_EQ(batch.indices, whole[i].indices);
        EXPECT_EQ(batch.images.ToVector(), whole[i].images.ToVector());
      }
      EXPECT_FALSE(loader.Next(&batch)) << "first " << first;
    }
  }
}

TEST(DataLoaderTest, TransformsApplied) {
  InMemoryDataset data = Indexed(3);
  DataLoaderOptions options;
  options.batch_size = 3;
  options.sampler.shuffle = false;
  options.transforms.resize = 8;
  options.transforms.normalize_mean = {0.5f};
  options.transforms.normalize_std = {2.0f};
  DataLoader loader = MakeLoader(data, options);
  std::vector<Batch> batches = RunEpoch(loader, 0);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].images.shape(), (Shape{3, 1, 8, 8}));
  // Constant images stay constant under resize: (2/255 - 0.5) / 2.
  EXPECT_NEAR(batches[0].images.at<float>({2, 0, 5, 1}),
              (2.0f / 255.0f - 0.5f) / 2.0f, 1e-6f);
}

TEST(DataLoaderTest, AugmentationDiffersAcrossEpochs) {
  // A single-pixel image: flips and crops move it around.
  std::vector<uint8_t> image(8 * 8, 0);
  image[2 * 8 + 1] = 255;
  InMemoryDataset data(image, {0}, 1, 8, 8);
  DataLoaderOptions options;
  options.batch_size = 1;
  options.transforms.random_crop = true;
  options.transforms.random_horizontal_flip = true;
  DataLoader loader = MakeLoader(data, options);
  std::set<std::vector<float>> distinct;
  for (int64_t epoch = 0; epoch < 20; ++epoch) {
    distinct.insert(RunEpoch(loader, epoch)[0].images.ToVector());
  }
  EXPECT_GT(distinct.size(), 5u);
}

TEST(DataLoaderTest, DestroyMidEpochDoesNotHang) {
  InMemoryDataset data = Indexed(1000, 8);
  for (int taken : {0, 1, 3}) {
    DataLoaderOptions options;
    options.batch_size = 10;
    options.transforms.resize = 32;
    DataLoader loader = MakeLoader(data, options);
    loader.StartEpoch(0);
    Batch batch;
    for (int i = 0; i < taken; ++i) ASSERT_TRUE(loader.Next(&batch));
  }  // destroyed with the prefetch thread blocked on a full queue
}

TEST(DataLoaderTest, RestartEpochMidwayAndMove) {
  InMemoryDataset data = Indexed(40);
  DataLoaderOptions options;
  options.batch_size = 4;
  DataLoader loader = MakeLoader(data, options);
  loader.StartEpoch(0);
  Batch batch;
  ASSERT_TRUE(loader.Next(&batch));
  ASSERT_TRUE(loader.Next(&batch));
  // Abandon epoch 0 midway; epoch 1 is complete.
  EXPECT_EQ(Sorted(EpochLabels(loader, 1)), Range(40));
  // Moving a loader mid-epoch keeps its position.
  loader.StartEpoch(2);
  ASSERT_TRUE(loader.Next(&batch));
  DataLoader moved = std::move(loader);
  int rest = 0;
  while (moved.Next(&batch)) ++rest;
  EXPECT_EQ(rest, 9);
  EXPECT_FALSE(moved.Next(&batch));  // stays at the end
}

TEST(DataLoaderTest, RestartsNeverMixEpochs) {
  InMemoryDataset data = Indexed(60);
  DataLoaderOptions options;
  options.batch_size = 5;
  options.transforms.resize = 12;  // slow enough for the worker to be mid-batch
  DataLoader loader = MakeLoader(data, options);
  for (int round = 0; round < 40; ++round) {
    const int64_t epoch = round % 3;
    const std::vector<int64_t> order = loader.EpochOrder(epoch);
    loader.StartEpoch(epoch);
    Batch batch;
    for (int k = 0; k < round % 5; ++k) {
      ASSERT_TRUE(loader.Next(&batch));
      EXPECT_EQ(batch.indices, std::vector<int64_t>(order.begin() + 5 * k,
                                                    order.begin() + 5 * k + 5))
          << "round " << round << " batch " << k;
    }
  }
}

TEST(DataLoaderTest, EmptyDataset) {
  InMemoryDataset data = Indexed(0);
  DataLoader loader = MakeLoader(data, DataLoaderOptions());
  EXPECT_EQ(loader.num_batches(), 0);
  loader.StartEpoch(0);
  Batch batch;
  EXPECT_FALSE(loader.Next(&batch));
}

TEST(DataLoaderTest, InvalidOptions) {
  InMemoryDataset data = Indexed(5);
  const auto error = [&](auto mutate) {
    DataLoaderOptions options;
    mutate(options);
    return DataLoader::Create(data, options).status();
  };
  absl::Status s = error([](DataLoaderOptions& o) { o.batch_size = 0; });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("batch_size"));
  EXPECT_THAT(error([](DataLoaderOptions& o) { o.batch_size = -3; }).message(),
              HasSubstr("batch_size"));
  EXPECT_THAT(
      error([](DataLoaderOptions& o) { o.sampler.num_shards = 0; }).message(),
      HasSubstr("num_shards"));
  EXPECT_THAT(error([](DataLoaderOptions& o) {
                o.sampler.num_shards = 2;
                o.sampler.shard_index = 2;
              }).message(),
              HasSubstr("shard_index 2"));
  EXPECT_THAT(
      error([](DataLoaderOptions& o) { o.transforms.resize = -1; }).message(),
      HasSubstr("resize"));
  EXPECT_THAT(error([](DataLoaderOptions& o) { o.num_threads = -1; }).message(),
              HasSubstr("num_threads"));
  EXPECT_THAT(error([](DataLoaderOptions& o) {
                o.transforms.crop_padding = -1;
              }).message(),
              HasSubstr("crop_padding"));
  EXPECT_THAT(error([](DataLoaderOptions& o) {
                o.transforms.normalize_mean = {0.5f};
              }).message(),
              HasSubstr("normalize_std"));
  EXPECT_THAT(error([](DataLoaderOptions& o) {
                o.transforms.normalize_mean = {0.5f, 0.5f};
                o.transforms.normalize_std = {1.0f, 1.0f};
              }).message(),
              HasSubstr("1 channels"));
  EXPECT_THAT(error([](DataLoaderOptions& o) {
                o.transforms.normalize_mean = {0.5f};
                o.transforms.normalize_std = {0.0f};
              }).message(),
              HasSubstr("> 0"));
  EXPECT_TRUE(DataLoader::Validate(data, DataLoaderOptions()).ok());
}

// A user's own dataset: 2 x 3 x 3 images computed on the fly, every pixel of
// image i equal to i / 100, label i % 10.
class Computed : public Dataset {
 public:
  explicit Computed(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  Example Get(int64_t i) const override {
    CHECK(i >= 0 && i < n_);
    return {Tensor::Full({2, 3, 3}, static_cast<float>(i) / 100), i % 10};
  }

 private:
  int64_t n_;
};

TEST(DataLoaderTest, TrainsFromAnyDatasetThroughTheDefaultGather) {
  DataLoaderOptions options;
  options.batch_size = 4;
  options.sampler.seed = 3;
  options.transforms.resize = 6;
  options.transforms.random_horizontal_flip = true;
  absl::StatusOr<DataLoader> loader =
      DataLoader::Create(std::make_shared<Computed>(10), options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  EXPECT_EQ(loader->num_batches(), 3);
  std::vector<int64_t> seen;
  for (const Batch& b : RunEpoch(*loader, 1)) {
    ASSERT_EQ(b.images.shape()[1], 2);
    EXPECT_EQ(b.images.shape()[2], 6);  // resized from 3
    for (size_t k = 0; k < b.indices.size(); ++k) {
      const int64_t i = b.indices[k];
      seen.push_back(i);
      EXPECT_EQ(b.labels.ToInt64Vector()[k], i % 10);
      // Constant images stay constant through flips and bilinear resizing.
      EXPECT_NEAR(b.images.at<float>({static_cast<int64_t>(k), 1, 5, 0}),
                  static_cast<float>(i) / 100, 1e-6);
    }
  }
  EXPECT_EQ(Sorted(seen), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  // The same order as an InMemoryDataset of the same size gets.
  EXPECT_EQ(loader->EpochOrder(1),
            MakeLoader(Indexed(10), options).EpochOrder(1));
}

TEST(DataLoaderTest, ValidatesTransformsOnAnyDatasetsImages) {
  DataLoaderOptions options;
  options.transforms.normalize_mean = {0.5f, 0.5f, 0.5f};
  options.transforms.normalize_std = {1.0f, 1.0f, 1.0f};
  EXPECT_THAT(
      DataLoader::Create(std::make_shared<Computed>(4), options)
          .status()
          .message(),
      HasSubstr("3 normalize_mean/normalize_std values for 2 channels"));
}

// The transforms are checked on Dataset::ImageShape: example 0's by default,
// an InMemoryDataset's own even when it is empty.
TEST(DataLoaderTest, ValidatesTransformsOnTheImageShape) {
  EXPECT_EQ(Computed(4).ImageShape(), Shape({2, 3, 3}));
  EXPECT_EQ(Computed(0).ImageShape(), Shape());
  const InMemoryDataset empty({}, {}, /*channels=*/3, /*height=*/4,
                              /*width=*/5);
  EXPECT_EQ(empty.ImageShape(), Shape({3, 4, 5}));
  DataLoaderOptions options;
  options.transforms.normalize_mean = {0.5f, 0.5f, 0.5f};
  options.transforms.normalize_std = {1.0f, 1.0f, 1.0f};
  EXPECT_TRUE(DataLoader::Validate(empty, options).ok());
  options.transforms.random_crop = true;
  EXPECT_THAT(DataLoader::Validate(empty, options).message(),
              HasSubstr("random_crop needs square images, got 4 x 5"));
  // Without a shape, the checks that do not depend on one.
  EXPECT_TRUE(DataLoader::Validate(Computed(0), DataLoaderOptions()).ok());
  options = DataLoaderOptions();
  options.transforms.resize = -1;
  EXPECT_THAT(DataLoader::Validate(Computed(0), options).message(),
              HasSubstr("resize"));
}

TEST(DataLoaderDeathTest, StartPastTheLastBatch) {
  InMemoryDataset data = Indexed(10);
  DataLoaderOptions options;
  options.batch_size = 5;
  DataLoader loader = MakeLoader(data, options);
  EXPECT_DEATH(loader.StartEpoch(0, 3), "first batch 3 not in \\[0, 2\\]");
  EXPECT_DEATH(loader.StartEpoch(0, -1), "first batch -1");
}

TEST(DataLoaderDeathTest, GatherNamesImagesOfAnotherShape) {
  class Ragged : public Computed {
   public:
    Ragged() : Computed(2) {}
    Example Get(int64_t i) const override {
      return {Tensor::Zeros({1, 2 + i, 2}), 0};
    }
  };
  const std::vector<int64_t> both = {0, 1};
  EXPECT_DEATH(Ragged().Gather(both),
               "example 1 has an image of shape \\[1, 3, 2\\] but example "
               "0 has \\[1, 2, 2\\]");
}

TEST(DataLoaderDeathTest, NextBeforeStartEpoch) {
  InMemoryDataset data = Indexed(5);
  DataLoader loader = MakeLoader(data, DataLoaderOptions());
  Batch batch;
  EXPECT_DEATH(loader.Next(&batch), "before StartEpoch");
}

}  // namespace
}  // namespace dive::data
