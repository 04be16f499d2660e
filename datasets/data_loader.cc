#include "datasets/data_loader.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "datasets/prefetcher.h"
#include "glog/logging.h"
#include "tensor/random.h"

namespace dive::data {
namespace {

// Keeps the augmentation stream apart from the other users of the seed.
constexpr uint64_t kAugmentSalt = 0x4155474d454e54ULL;  // "AUGMENT"

}  // namespace

struct DataLoader::State {
  State(std::shared_ptr<const Dataset> d, const DataLoaderOptions& o)
      : data(std::move(d)), options(o), sampler(data->size(), o.sampler) {}

  const std::shared_ptr<const Dataset> data;
  const DataLoaderOptions options;
  const EpochSampler sampler;

  // The epoch in progress: its order and the batches handed out so far.
  int64_t epoch = -1;
  std::shared_ptr<const std::vector<int64_t>> order;
  int64_t consumed = 0;
  // Made by the first StartEpoch that prefetches.
  std::unique_ptr<Prefetcher> prefetcher;

  int64_t NumBatches() const {
    const int64_t n = sampler.num_examples();
    const int64_t b = options.batch_size;
    // Not (n + b - 1) / b, which overflows for a huge batch_size.
    return options.sampler.drop_last ? n / b : n / b + (n % b != 0);
  }

  Batch Build(int64_t for_epoch, absl::Span<const int64_t> ord,
              int64_t batch_index) const {
    const int64_t begin = batch_index * options.batch_size;
    const int64_t end = std::min<int64_t>(begin + options.batch_size,
                                          static_cast<int64_t>(ord.size()));
    CHECK(batch_index >= 0 && begin < end)
        << "DataLoader: batch " << batch_index << " out of range (epoch has "
        << NumBatches() << ")";
    Batch batch = data->Gather(ord.subspan(begin, end - begin));
    // Seeded by the batch's position alone, so prefetching, restarts and
    // MakeBatch all give the same draws.
    Generator gen(CombineSeeds(
        {kAugmentSalt, options.sampler.seed, static_cast<uint64_t>(for_epoch),
         static_cast<uint64_t>(options.sampler.shard_index),
         static_cast<uint64_t>(batch_index)}));
    batch.images =
        ApplyTransforms(options.transforms, std::move(batch.images), gen);
    return batch;
  }
};

absl::Status DataLoader::Validate(const Dataset& data,
                                  const DataLoaderOptions& options) {
  const auto invalid = [](auto&&... args) {
    return absl::InvalidArgumentError(absl::StrCat("DataLoader: ", args...));
  };
  if (options.batch_size <= 0) {
    return invalid("batch_size must be positive, got ", options.batch_size);
  }
  if (options.num_threads < 0) {
    return invalid("num_threads must be >= 0, got ", options.num_threads);
  }
  if (absl::Status s = EpochSampler::Validate(options.sampler); !s.ok()) {
    return invalid(s.message());
  }
  // The transforms are checked on the images' shape (Gather checks that
  // every image has it); an empty dataset of no known shape gets the checks
  // that do not depend on it, on 1 x 1 x 1.
  Shape image = data.ImageShape();
  if (data.size() == 0 && image.rank() == 0) image = {1, 1, 1};
  if (image.rank() != 3) {
    return invalid("images of shape ", image.ToString(), ", not [C, H, W]");
  }
  if (absl::Status s =
          ValidateTransforms(options.transforms, image[0], image[1], image[2]);
      !s.ok()) {
    return invalid(s.message());
  }
  return absl::OkStatus();
}

absl::StatusOr<DataLoader> DataLoader::Create(
    std::shared_ptr<const Dataset> data, const DataLoaderOptions& options) {
  CHECK(data != nullptr) << "DataLoader::Create: null dataset";
  if (absl::Status s = Validate(*data, options); !s.ok()) return s;
  return DataLoader(std::make_unique<State>(std::move(data), options));
}

absl::StatusOr<DataLoader> DataLoader::Create(
    const InMemoryDataset& data, const DataLoaderOptions& options) {
  return Create(std::make_shared<const InMemoryDataset>(data), options);
}

DataLoader::DataLoader(std::unique_ptr<State> state)
    : state_(std::move(state)) {}

DataLoader::DataLoader(DataLoader&& other) noexcept = default;
DataLoader& DataLoader::operator=(DataLoader&& other) noexcept = default;
DataLoader::~DataLoader() = default;

int64_t DataLoader::num_examples() const {
  CHECK(state_) << "DataLoader: use after move";
  return state_->sampler.num_examples();
}

int64_t DataLoader::num_batches() const {
  CHECK(state_) << "DataLoader: use after move";
  return state_->NumBatches();
}

const DataLoaderOptions& DataLoader::options() const {
  CHECK(state_) << "DataLoader: use after move";
  return state_->options;
}

const Dataset& DataLoader::dataset() const {
  CHECK(state_) << "DataLoader: use after move";
  return *state_->data;
}

std::vector<int64_t> DataLoader::EpochOrder(int64_t epoch) const {
  CHECK(state_) << "DataLoader: use after move";
  return state_->sampler.Order(epoch);
}

Batch DataLoader::MakeBatch(int64_t epoch, int64_t batch_index) const {
  CHECK(state_) << "DataLoader: use after move";
  CHECK(batch_index >= 0 && batch_index < state_->NumBatches())
      << "DataLoader::MakeBatch: batch " << batch_index << " not in [0, "
      << state_->NumBatches() << ")";
  return state_->Build(epoch, state_->sampler.Order(epoch), batch_index);
}

void DataLoader::StartEpoch(int64_t epoch, int64_t first_batch) {
  CHECK(state_) << "DataLoader: use after move";
  CHECK_GE(epoch, 0) << "DataLoader::StartEpoch: negative epoch";
  State& s = *state_;
  CHECK(first_batch >= 0 && first_batch <= s.NumBatches())
      << "DataLoader::StartEpoch: first batch " << first_batch << " not in [0, "
      << s.NumBatches() << "]";
  if (s.epoch != epoch || s.order == nullptr) {
    s.order =
        std::make_shared<const std::vector<int64_t>>(s.sampler.Order(epoch));
  }
  s.epoch = epoch;
  s.consumed = first_batch;
  if (s.options.prefetch && first_batch < s.NumBatches()) {
    if (s.prefetcher == nullptr) {
      s.prefetcher = std::make_unique<Prefetcher>(s.options.num_threads);
    }
    s.prefetcher->Restart([&s, epoch, order = s.order](
                              int64_t i) { return s.Build(epoch, *order, i); },
                          first_batch, s.NumBatches());
  }
}

bool DataLoader::Next(Batch* batch) {
  CHECK(state_) << "DataLoader: use after move";
  State& s = *state_;
  CHECK_GE(s.epoch, 0) << "DataLoader::Next called before StartEpoch";
  if (s.consumed >= s.NumBatches()) return false;
  *batch = s.options.prefetch ? s.prefetcher->Next()
                              : s.Build(s.epoch, *s.order, s.consumed);
  ++s.consumed;
  return true;
}

}  // namespace dive::data
