// File: bench/model_bench.h
// -----------------------------------------------------------------------------
//
// One training step or one inference batch of a zoo model on a fixed
// synthetic batch, for the benchmarks (`bench/model_benchmark.cc`) and the
// side-by-side comparison with PyTorch (`bench/throughput.cc`, driven by
// `bench/compare_pytorch.py`). Data loading is left out on purpose: both
// frameworks are timed on compute only.
//
// A training step is what `train::Train` does per batch: forward, mean
// SoftmaxCrossEntropy, read the loss, zero the gradients, backward, and an
// optim::SGD step with the recipe's learning rate (no momentum, no weight
// decay). Inference is a forward pass under `NoGradGuard` of the model
// frozen for inference (nn::Module::Freeze: eval mode, the weights prepared
// once), as train::Evaluate runs it.
//
// Bench resolutions: the small models (softmax, MLPs, LeNets) run at their
// recipe's batch size and input size (256 at 28 x 28). The large ones run at
// a smaller, CPU-friendly input size and batch (see `DefaultBenchSetting`), so
// that one step takes under a second instead of half a minute.
//
// Example:
//
//   const models::ModelSpec& spec = *models::FindModel("lenet");
//   BenchSetting setting = DefaultBenchSetting(spec);
//   absl::StatusOr<std::unique_ptr<ModelRunner>> runner =
//       ModelRunner::Create(spec, setting);
//   if (!runner.ok()) return runner.status();
//   for (int i = 0; i < 10; ++i) (*runner)->TrainStep();

#ifndef BENCH_MODEL_BENCH_H_
#define BENCH_MODEL_BENCH_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "models/spec.h"
#include "nn/module.h"
#include "optim/sgd.h"
#include "tensor/tensor.h"

namespace dive::bench {

// Batch size and input side of a benchmark run.
struct BenchSetting {
  int64_t batch_size = 256;
  int64_t input_size = 28;
};

// DefaultBenchSetting()
//
// The setting the benchmarks use for `spec`:
//
//   softmax, mlp, mlp_dropout, lenet, bn_lenet   recipe: batch 256 at 28
//   alexnet, vgg, nin                            batch 64 at 96
//   googlenet, resnet, densenet                  batch 32 at 96
//
// (one training step of each large model takes 0.35-0.8 s on one core of
// an AVX-512 EPYC).
//
// Models not in this list get their recipe (batch and input size).
BenchSetting DefaultBenchSetting(const models::ModelSpec& spec);

// ModelRunner
//
// A freshly initialized model (seeded), an SGD optimizer with the recipe's
// learning rate, and one batch of uniform [0, 1) images with random labels.
// The model is fused for evaluation (nn::Module::Fuse), as the
// trainers' and //tools:eval's evaluation is, so Infer measures what they
// run; training steps are unaffected.
class ModelRunner {
 public:
  // InvalidArgument when the model cannot take `setting.input_size` or the
  // batch size is not positive.
  static absl::StatusOr<std::unique_ptr<ModelRunner>> Create(
      const models::ModelSpec& spec, const BenchSetting& setting,
      uint64_t seed = 0);

  // One training step (train mode); returns the loss before the update.
  float TrainStep();
  // One forward pass of the frozen model without gradients (the first call
  // freezes it, a training step thaws it); returns the logits.
  Tensor Infer();

  const BenchSetting& setting() const { return setting_; }
  nn::Module& model() { return *model_; }
  const std::shared_ptr<nn::Module>& shared_model() const { return model_; }

 private:
  ModelRunner(std::shared_ptr<nn::Module> model, const BenchSetting& setting,
              float lr, Tensor images, Tensor labels);

  std::shared_ptr<nn::Module> model_;
  BenchSetting setting_;
  optim::SGD sgd_;
  Tensor images_, labels_;
};

// PeakRssBytes()
//
// The process's peak resident set size so far (Linux VmHWM, from
// getrusage's ru_maxrss).
int64_t PeakRssBytes();

}  // namespace dive::bench

#endif  // BENCH_MODEL_BENCH_H_
