// File: datasets/data_loader.h
// -----------------------------------------------------------------------------
//
// `DataLoader` turns any `Dataset` into a sequence of float32 batches for
// training or evaluation, like PyTorch's `DataLoader` with a
// `DistributedSampler`. It is composed of small pieces that can also be used
// alone, as Flashlight's ShuffleDataset / BatchDataset / PrefetchDataset are:
//
//   * `EpochSampler` (sampler.h): each epoch's order, a permutation drawn
//     from (seed, epoch) alone, and this shard's part of it (shard k of S
//     takes positions k, k + S, ...);
//   * `Dataset::Gather` (dataset.h): the batch of those indices, images
//     float32 [B, C, H, W] and labels int64 [B]; the last partial batch is
//     kept or dropped (`drop_last`);
//   * `ApplyTransforms` (transforms.h): random crop, random flip, normalize,
//     resize, with random draws from a generator seeded by (seed, epoch,
//     shard, batch), so results do not depend on prefetching or timing;
//   * `Prefetcher` (prefetcher.h): one background thread, alive as long as
//     the loader, prepares up to two batches ahead. Starting another epoch
//     mid-epoch discards the old epoch's batches; destroying the loader
//     stops the thread after at most the batch it is building.
//
// Example:
//
//   absl::StatusOr<dive::data::InMemoryDataset> train =
//       dive::data::LoadFashionMnist(dive::data::kDefaultFashionMnistDir,
//                              dive::data::Split::kTrain);
//   dive::data::DataLoaderOptions options;
//   options.batch_size = 256;
//   options.transforms.resize = 224;      // d2l's AlexNet input size
//   absl::StatusOr<dive::data::DataLoader> loader =
//       dive::data::DataLoader::Create(*train, options);
//   if (!loader.ok()) return loader.status();
//   for (int epoch = 0; epoch < 10; ++epoch) {
//     loader->StartEpoch(epoch);
//     dive::data::Batch batch;
//     while (loader->Next(&batch)) {
//       // batch.images: float32 [256, 1, 224, 224]; batch.labels: int64 [256]
//     }
//   }
//
// A `DataLoader` is used from one thread at a time. It is movable, not
// copyable, and shares ownership of its dataset (an `InMemoryDataset` is
// copied, which is cheap: copies share the data).

#ifndef DATASETS_DATA_LOADER_H_
#define DATASETS_DATA_LOADER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "datasets/dataset.h"
#include "datasets/sampler.h"
#include "datasets/transforms.h"
#include "tensor/tensor.h"

namespace dive::data {

// A loader's pieces' options and its own.
struct DataLoaderOptions {
  // Examples per batch; must be positive.
  int64_t batch_size = 64;
  // Each epoch's order and this loader's shard of it. `sampler.seed` also
  // seeds the random transforms, and `sampler.drop_last` also drops the last
  // batch when it has fewer than `batch_size` examples (so that with
  // sharding every shard gets the same number of batches).
  SamplerOptions sampler;
  // What is done to each batch's images: resize, normalize, random flip and
  // crop.
  TransformOptions transforms;
  // Prepare the next batches on a background thread.
  bool prefetch = true;
  // OpenMP threads for the transforms on the prefetch thread (resize is
  // parallel over the batch); 0 keeps OpenMP's default (all cores). Lower it
  // when the training step's own threads should keep the cores.
  int num_threads = 0;
};

class DataLoader {
 public:
  // Create()
  //
  // A loader over `data`, or InvalidArgument when `options` are invalid:
  // batch_size <= 0, num_threads < 0, the sampler's options
  // (`EpochSampler::Validate`) or the transforms' for the dataset's images
  // (`ValidateTransforms`, on `Dataset::ImageShape`). Every example must
  // have the same image shape.
  static absl::StatusOr<DataLoader> Create(std::shared_ptr<const Dataset> data,
                                           const DataLoaderOptions& options);
  static absl::StatusOr<DataLoader> Create(const InMemoryDataset& data,
                                           const DataLoaderOptions& options);

  // Validate()
  //
  // The check `Create` does, without creating a loader.
  static absl::Status Validate(const Dataset& data,
                               const DataLoaderOptions& options);

  DataLoader(DataLoader&& other) noexcept;
  DataLoader& operator=(DataLoader&& other) noexcept;
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;
  // Stops the prefetch thread, if any, without waiting for the epoch to end.
  ~DataLoader();

  // num_examples()
  //
  // Examples in this shard per epoch (before dropping a partial batch).
  int64_t num_examples() const;

  // num_batches()
  //
  // Batches per epoch in this shard.
  int64_t num_batches() const;

  const DataLoaderOptions& options() const;
  const Dataset& dataset() const;

  // EpochOrder()
  //
  // The dataset indices this shard visits in `epoch`, in order, including
  // those of a partial last batch that `drop_last` drops.
  std::vector<int64_t> EpochOrder(int64_t epoch) const;

  // StartEpoch()
  //
  // Begins (or restarts) `epoch` at batch `first_batch` (a run resumed in
  // the middle of an epoch; batches are the same as in an epoch started at
  // 0): computes its order and, with prefetching, starts preparing batches.
  // Abandons any epoch in progress. CHECK-fails unless first_batch is in
  // [0, num_batches()].
  void StartEpoch(int64_t epoch, int64_t first_batch = 0);

  // Next()
  //
  // Stores the epoch's next batch in `*batch` and returns true, or returns
  // false when the epoch is over. CHECK-fails before the first `StartEpoch`.
  bool Next(Batch* batch);

  // MakeBatch()
  //
  // Batch `batch_index` of `epoch`, built on the calling thread: exactly what
  // `Next` returns at that position. For tests and tools.
  Batch MakeBatch(int64_t epoch, int64_t batch_index) const;

 private:
  struct State;
  explicit DataLoader(std::unique_ptr<State> state);

  std::unique_ptr<State> state_;
};

}  // namespace dive::data

#endif  // DATASETS_DATA_LOADER_H_
