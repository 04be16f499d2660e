#include "datasets/data_loader.h"

#include <omp.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <numeric>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "datasets/transforms.h"
#include "glog/logging.h"
#include "tensor/random.h"

namespace dive::data {
namespace {

// Batches prepared ahead of the consumer.
constexpr size_t kPrefetchDepth = 2;

// Salts that keep the shuffle and augmentation streams apart.
constexpr uint64_t kShuffleSalt = 0x53485546464c45ULL;  // "SHUFFLE"
constexpr uint64_t kAugmentSalt = 0x4155474d454e54ULL;  // "AUGMENT"

}  // namespace

struct DataLoader::State {
  State(const InMemoryDataset& d, const DataLoaderOptions& o)
      : data(d), options(o) {}

  const InMemoryDataset data;
  const DataLoaderOptions options;

  // The epoch in progress, as seen by the consumer (`Next`).
  int64_t epoch = -1;
  std::shared_ptr<const std::vector<int64_t>> order;
  int64_t consumed = 0;  // batches handed out by Next in this epoch

  // Prefetching. One worker thread lives as long as the loader (so the
  // OpenMP thread pool of its transforms is created once, not per epoch).
  // Each StartEpoch begins a new `generation`; a batch the worker was
  // building for an older generation is discarded. Everything below is
  // guarded by `mu`.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Batch> queue;
  int64_t generation = 0;
  int64_t worker_epoch = -1;
  std::shared_ptr<const std::vector<int64_t>> worker_order;
  int64_t produce_next = 0;  // next batch index the worker should build
  bool shutdown = false;
  std::thread worker;  // started by the first StartEpoch

  int64_t NumExamples() const {
    const int64_t n = data.size();
    const int64_t s = options.num_shards;
    if (options.drop_last) return n / s;
    return n > options.shard_index ? (n - options.shard_index + s - 1) / s : 0;
  }

  int64_t NumBatches() const {
    const int64_t n = NumExamples();
    const int64_t b = options.batch_size;
    // Not (n + b - 1) / b, which overflows for a huge batch_size.
    return options.drop_last ? n / b : n / b + (n % b != 0);
  }

  std::vector<int64_t> Order(int64_t for_epoch) const {
    const int64_t n = data.size();
    std::vector<int64_t> all;
    if (options.shuffle) {
      Generator gen(CombineSeeds(
          {kShuffleSalt, options.seed, static_cast<uint64_t>(for_epoch)}));
      all = gen.Permutation(n);
    } else {
      all.resize(n);
      std::iota(all.begin(), all.end(), 0);
    }
    std::vector<int64_t> mine;
    mine.reserve(NumExamples());
    const int64_t s = options.num_shards;
    const int64_t limit = options.drop_last ? n / s * s : n;
    for (int64_t k = options.shard_index; k < limit; k += s) {
      mine.push_back(all[k]);
    }
    return mine;
  }

  Batch Build(int64_t for_epoch, absl::Span<const int64_t> ord,
              int64_t batch_index) const {
    const int64_t begin = batch_index * options.batch_size;
    const int64_t end = std::min<int64_t>(begin + options.batch_size,
                                          static_cast<int64_t>(ord.size()));
    CHECK(batch_index >= 0 && begin < end)
        << "DataLoader: batch " << batch_index << " out of range (epoch has "
        << NumBatches() << ")";
    Batch batch;
    batch.indices.assign(ord.begin() + begin, ord.begin() + end);
    batch.images = data.GatherImages(batch.indices);
    batch.labels = data.GatherLabels(batch.indices);

    if (options.random_crop || options.random_horizontal_flip) {
      Generator gen(CombineSeeds({kAugmentSalt, options.seed,
                                  static_cast<uint64_t>(for_epoch),
                                  static_cast<uint64_t>(options.shard_index),
                                  static_cast<uint64_t>(batch_index)}));
      if (options.random_crop) {
        batch.images =
            RandomCrop(batch.images, data.height(), options.crop_padding, gen);
      }
      if (options.random_horizontal_flip) {
        batch.images = RandomHorizontalFlip(batch.images, 0.5f, gen);
      }
    }
    // Normalizing before resizing gives the same values up to rounding
    // (bilinear weights sum to 1, and normalization is affine per channel)
    // and touches up to 64x fewer pixels at 224 x 224.
    if (!options.normalize_mean.empty()) {
      NormalizeInPlace(batch.images, options.normalize_mean,
                       options.normalize_std);
    }
    if (options.resize > 0 &&
        (options.resize != data.height() || options.resize != data.width())) {
      batch.images =
          ResizeBilinear(batch.images, options.resize, options.resize);
    }
    return batch;
  }

  // The prefetch thread: builds batches of the current generation into
  // `queue`, at most kPrefetchDepth ahead of the consumer.
  void WorkerLoop() {
    if (options.num_threads > 0) omp_set_num_threads(options.num_threads);
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      cv.wait(lock, [this] {
        return shutdown ||
               (produce_next < NumBatches() && queue.size() < kPrefetchDepth);
      });
      if (shutdown) return;
      const int64_t my_generation = generation;
      const int64_t my_epoch = worker_epoch;
      const std::shared_ptr<const std::vector<int64_t>> my_order = worker_order;
      const int64_t index = produce_next++;
      lock.unlock();
      Batch batch = Build(my_epoch, *my_order, index);
      lock.lock();
      if (generation == my_generation) {
        queue.push_back(std::move(batch));
        cv.notify_all();
      }
    }
  }

  // Starts `epoch` on the worker: drops queued batches of the previous one.
  void Restart(int64_t new_epoch,
               std::shared_ptr<const std::vector<int64_t>> new_order,
               int64_t first_batch) {
    {
      std::lock_guard<std::mutex> lock(mu);
      ++generation;
      worker_epoch = new_epoch;
      worker_order = std::move(new_order);
      produce_next = first_batch;
      queue.clear();
      if (!worker.joinable()) worker = std::thread([this] { WorkerLoop(); });
    }
    cv.notify_all();
  }

  // Stops the worker; it finishes at most the batch it is building.
  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu);
      shutdown = true;
    }
    cv.notify_all();
    if (worker.joinable()) worker.join();
  }
};

absl::Status DataLoader::Validate(const InMemoryDataset& data,
                                  const DataLoaderOptions& options) {
  const auto invalid = [](auto&&... args) {
    return absl::InvalidArgumentError(absl::StrCat("DataLoader: ", args...));
  };
  if (options.batch_size <= 0) {
    return invalid("batch_size must be positive, got ", options.batch_size);
  }
  if (options.num_shards <= 0) {
    return invalid("num_shards must be positive, got ", options.num_shards);
  }
  if (options.shard_index < 0 || options.shard_index >= options.num_shards) {
    return invalid("shard_index ", options.shard_index, " is not in [0, ",
                   options.num_shards, ")");
  }
  if (options.resize < 0) {
    return invalid("resize must be >= 0, got ", options.resize);
  }
  if (options.num_threads < 0) {
    return invalid("num_threads must be >= 0, got ", options.num_threads);
  }
  if (options.crop_padding < 0) {
    return invalid("crop_padding must be >= 0, got ", options.crop_padding);
  }
  if (options.random_crop && data.height() != data.width()) {
    return invalid("random_crop needs square images, got ", data.height(),
                   " x ", data.width());
  }
  const size_t nm = options.normalize_mean.size();
  if (nm != options.normalize_std.size()) {
    return invalid(nm, " normalize_mean values but ",
                   options.normalize_std.size(), " normalize_std values");
  }
  if (nm != 0 && nm != 1 && static_cast<int64_t>(nm) != data.channels()) {
    return invalid(nm, " normalize_mean/normalize_std values for ",
                   data.channels(), " channels (need 1 or one per channel)");
  }
  for (float s : options.normalize_std) {
    if (!(s > 0.0f)) return invalid("normalize_std values must be > 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<DataLoader> DataLoader::Create(
    const InMemoryDataset& data, const DataLoaderOptions& options) {
  if (absl::Status s = Validate(data, options); !s.ok()) return s;
  return DataLoader(std::make_unique<State>(data, options));
}

DataLoader::DataLoader(std::unique_ptr<State> state)
    : state_(std::move(state)) {}

DataLoader::DataLoader(DataLoader&& other) noexcept = default;

DataLoader& DataLoader::operator=(DataLoader&& other) noexcept {
  if (this != &other) {
    if (state_) state_->Shutdown();
    state_ = std::move(other.state_);
  }
  return *this;
}

DataLoader::~DataLoader() {
  if (state_) state_->Shutdown();
}

int64_t DataLoader::num_examples() const {
  CHECK(state_) << "DataLoader: use after move";
  return state_->NumExamples();
}

int64_t DataLoader::num_batches() const {
  CHECK(state_) << "DataLoader: use after move";
  return state_->NumBatches();
}

const DataLoaderOptions& DataLoader::options() const {
  CHECK(state_) << "DataLoader: use after move";
  return state_->options;
}

const InMemoryDataset& DataLoader::dataset() const {
  CHECK(state_) << "DataLoader: use after move";
  return state_->data;
}

std::vector<int64_t> DataLoader::EpochOrder(int64_t epoch) const {
  CHECK(state_) << "DataLoader: use after move";
  return state_->Order(epoch);
}

Batch DataLoader::MakeBatch(int64_t epoch, int64_t batch_index) const {
  CHECK(state_) << "DataLoader: use after move";
  CHECK(batch_index >= 0 && batch_index < state_->NumBatches())
      << "DataLoader::MakeBatch: batch " << batch_index << " not in [0, "
      << state_->NumBatches() << ")";
  return state_->Build(epoch, state_->Order(epoch), batch_index);
}

void DataLoader::StartEpoch(int64_t epoch, int64_t first_batch) {
  CHECK(state_) << "DataLoader: use after move";
  CHECK_GE(epoch, 0) << "DataLoader::StartEpoch: negative epoch";
  State& s = *state_;
  CHECK(first_batch >= 0 && first_batch <= s.NumBatches())
      << "DataLoader::StartEpoch: first batch " << first_batch
      << " not in [0, " << s.NumBatches() << "]";
  if (s.epoch != epoch || s.order == nullptr) {
    s.order = std::make_shared<const std::vector<int64_t>>(s.Order(epoch));
  }
  s.epoch = epoch;
  s.consumed = first_batch;
  if (s.options.prefetch && first_batch < s.NumBatches()) {
    s.Restart(epoch, s.order, first_batch);
  }
}

bool DataLoader::Next(Batch* batch) {
  CHECK(state_) << "DataLoader: use after move";
  State& s = *state_;
  CHECK_GE(s.epoch, 0) << "DataLoader::Next called before StartEpoch";
  if (s.consumed >= s.NumBatches()) return false;
  if (!s.options.prefetch) {
    *batch = s.Build(s.epoch, *s.order, s.consumed++);
    return true;
  }
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.cv.wait(lock, [&s] { return !s.queue.empty(); });
    *batch = std::move(s.queue.front());
    s.queue.pop_front();
  }
  s.cv.notify_all();
  ++s.consumed;
  return true;
}

}  // namespace dive::data
