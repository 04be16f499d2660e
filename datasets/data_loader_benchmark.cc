// Throughput of the input pipeline: loading Fashion-MNIST, and producing
// batches at the image sizes d2l uses (28, 96 for ResNet-style nets, 224 for
// AlexNet/VGG).
//
//   bazel run -c opt //datasets:data_loader_benchmark

#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"
#include "datasets/data_loader.h"
#include "datasets/dataset.h"
#include "datasets/fashion_mnist.h"
#include "datasets/transforms.h"
#include "tensor/random.h"

namespace dive::data {
namespace {

InMemoryDataset Synthetic(int64_t n) {
  std::vector<uint8_t> images(n * 28 * 28);
  std::vector<int64_t> labels(n);
  Generator gen(1);
  for (auto& b : images) b = static_cast<uint8_t>(gen.NextIndex(256));
  for (auto& l : labels) l = gen.NextIndex(10);
  return InMemoryDataset(std::move(images), std::move(labels), 1, 28, 28);
}

void BM_LoadFashionMnistTrain(benchmark::State& state) {
  for (auto _ : state) {
    absl::StatusOr<InMemoryDataset> d =
        LoadFashionMnist(kDefaultFashionMnistDir, Split::kTrain);
    if (!d.ok()) {
      state.SkipWithError(std::string(d.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(d->size());
  }
  state.SetItemsProcessed(state.iterations() * 60000);
}
BENCHMARK(BM_LoadFashionMnistTrain)->Unit(benchmark::kMillisecond);

// Args: batch size, resize (0 = none), prefetch.
void BM_DataLoaderEpoch(benchmark::State& state) {
  const InMemoryDataset data = Synthetic(5120);
  DataLoaderOptions options;
  options.batch_size = state.range(0);
  options.transforms.resize = state.range(1);
  options.prefetch = state.range(2) != 0;
  options.transforms.normalize_mean = {0.2860f};
  options.transforms.normalize_std = {0.3530f};
  absl::StatusOr<DataLoader> loader = DataLoader::Create(data, options);
  int64_t epoch = 0;
  for (auto _ : state) {
    loader->StartEpoch(epoch++);
    Batch batch;
    while (loader->Next(&batch)) benchmark::DoNotOptimize(batch.images.data());
  }
  state.SetItemsProcessed(state.iterations() * data.size());
}
BENCHMARK(BM_DataLoaderEpoch)
    ->Args({256, 0, 1})
    ->Args({256, 96, 1})
    ->Args({256, 224, 0})
    ->Args({256, 224, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_ResizeBilinear(benchmark::State& state) {
  Generator gen(0);
  const Tensor x = gen.Uniform({256, 1, 28, 28}, 0.0f, 1.0f);
  const int64_t side = state.range(0);
  for (auto _ : state) {
    benchmark::DoNotOptimize(ResizeBilinear(x, side, side).data());
  }
  state.SetItemsProcessed(state.iterations() * 256);
}
BENCHMARK(BM_ResizeBilinear)
    ->Arg(96)
    ->Arg(224)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace dive::data
