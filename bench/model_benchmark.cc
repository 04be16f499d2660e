// Training and inference speed of every model of the zoo:
//
//   bazel run //bench:model_benchmark
//   bazel run //bench:model_benchmark -- --benchmark_filter='lenet'
//
// For each model in models::AllModels() (see bench/model_bench.h for the
// batch size and input resolution of each):
//
//   BM_TrainStep/<model>/threads:T   forward + SoftmaxCrossEntropy + backward
//                                    + SGD step at the recipe learning rate
//   BM_Inference/<model>/threads:T   forward in eval mode under NoGradGuard
//
// with T = 1 and T = all cores. "items_per_second" is examples/s; the
// "batch" and "size" counters give the batch size and input side. Data
// loading is not included. BM_PeakFma/1 (tensor/peak/peak.h) is the machine's
// single-core FMA peak, measured in the same run.

#include <algorithm>
#include <memory>
#include <string>
#include <thread>

#include "bench/model_bench.h"
#include "benchmark/benchmark.h"
#include "glog/logging.h"
#include "models/zoo.h"
#include "tensor/tensor.h"

namespace dive::bench {
namespace {

// One model at a time: building one is cheap next to a benchmark, but
// keeping every model alive would hold all of their weights.
ModelRunner& Runner(const models::ModelSpec& spec) {
  static std::string* const name = new std::string;
  static std::unique_ptr<ModelRunner>* const runner =
      new std::unique_ptr<ModelRunner>;
  if (*name != spec.name) {
    runner->reset();
    absl::StatusOr<std::unique_ptr<ModelRunner>> made =
        ModelRunner::Create(spec, DefaultBenchSetting(spec));
    CHECK(made.ok()) << spec.name << ": " << made.status();
    *runner = *std::move(made);
    *name = spec.name;
    (*runner)->TrainStep();  // warm-up: first-touch allocations
  }
  return **runner;
}

void SetCounters(benchmark::State& state, const BenchSetting& setting) {
  state.SetItemsProcessed(state.iterations() * setting.batch_size);
  state.counters["batch"] = static_cast<double>(setting.batch_size);
  state.counters["size"] = static_cast<double>(setting.input_size);
}

void BM_TrainStep(benchmark::State& state, const models::ModelSpec& spec) {
  SetNumThreads(static_cast<int>(state.range(0)));
  ModelRunner& runner = Runner(spec);
  for (auto _ : state) {
    benchmark::DoNotOptimize(runner.TrainStep());
  }
  SetCounters(state, runner.setting());
  SetNumThreads(0);
}

void BM_Inference(benchmark::State& state, const models::ModelSpec& spec) {
  SetNumThreads(static_cast<int>(state.range(0)));
  ModelRunner& runner = Runner(spec);
  runner.Infer();  // warm-up of the eval path
  for (auto _ : state) {
    Tensor logits = runner.Infer();
    benchmark::DoNotOptimize(logits.data());
  }
  SetCounters(state, runner.setting());
  SetNumThreads(0);
}

int RegisterAll() {
  const int cores =
      std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  for (const models::ModelSpec& spec : models::AllModels()) {
    for (auto* fn : {&BM_TrainStep, &BM_Inference}) {
      const std::string prefix =
          fn == &BM_TrainStep ? "BM_TrainStep/" : "BM_Inference/";
      auto* b = benchmark::RegisterBenchmark(
          (prefix + spec.name).c_str(),
          [fn, spec](benchmark::State& state) { fn(state, spec); });
      b->ArgName("threads")->Arg(1);
      if (cores > 1) b->Arg(cores);
      b->UseRealTime()->Unit(benchmark::kMillisecond);
    }
  }
  return 0;
}
const int registered = RegisterAll();  // at static initialization

}  // namespace
}  // namespace dive::bench
