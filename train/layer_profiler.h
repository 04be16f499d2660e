// File: train/layer_profiler.h
// -----------------------------------------------------------------------------
//
// `LayerProfiler` times every module of a model during training, and samples
// what its outputs look like, through module hooks alone (nn/module.h) and
// gradient hooks on the outputs (autograd/variable.h): nothing in the model
// or the loop changes, and removing the profiler removes every hook.
//
// For each module, in the order of the first training step's calls:
//
//   * forward: from its forward pre-hook to its forward hook;
//   * backward: from the moment the gradient of its output is complete (a
//     hook on the output) to the moment the gradient of its input is (a hook
//     on the input), or, for a module whose input needs no gradient (the
//     first layer), to the end of the backward pass (`OnAfterBackward`).
//     Where a module's input also feeds other modules (a residual
//     shortcut), its backward includes theirs up to that point;
//   * every `stats_every` steps, the mean and standard deviation of its
//     output and, for ReLU, the fraction of zeros (dead units) and, for
//     Sigmoid and Tanh, the fraction saturated (|y| past 0.99 of its
//     range, where the derivative is below 0.02): the book's lessons on dead
//     units and vanishing gradients, measured.
//
// Only training-mode calls with gradients count (evaluation passes do not).
// As a `TrainObserver`, it closes each step's measurements in `OnStep`;
// `Table()` is the `--profile` report:
//
//   Per-layer time over 235 training steps, mean per step: 41.20 ms
//   Module                      Forward ms  Backward ms  Share  Fwd GFLOP/s
//   Sequential                       12.10        25.30  90.8%
//     0 Conv2d(1, 6, ...)             2.01         4.10  14.8%         15.0
//   ...
//   (loss, optimizer, data and the rest)                  9.2%
//
// Fwd GFLOP/s is a Conv2d's or Linear's forward rate (nn/flops.h counts its
// multiply-adds x 2 from the output's shape); the backward column has none,
// since a layer's backward time may hold its neighbours' (above).
//
// Example:
//
//   LayerProfiler profiler(*model, /*stats_every=*/10);
//   options.observers.push_back(&profiler);
//   Train(spec, *model, options, train, test);
//   std::cout << profiler.Table();

#ifndef TRAIN_LAYER_PROFILER_H_
#define TRAIN_LAYER_PROFILER_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "autograd/hook_handle.h"
#include "nn/module.h"
#include "train/observer.h"

namespace dive::train {

// What an activation statistic counts, by module kind.
enum class UnitStat { kNone, kZero, kSaturated };

struct LayerStats {
  std::string name;            // dotted, "" for the model itself
  std::string description;     // Module::Describe()
  int depth = 0;               // nesting depth of the call
  int64_t calls = 0;           // training-step calls so far
  double forward_seconds = 0;  // totals over those calls
  double backward_seconds = 0;
  // 2 x the forward multiply-adds of those calls, for Conv2d and Linear
  // (nn/flops.h; 0 for other modules): the table's forward GFLOP/s.
  int64_t forward_flops = 0;
  // Of the output, at the latest sampled step (`sampled` false: none yet).
  bool sampled = false;
  double mean = 0;
  double stddev = 0;
  UnitStat unit_stat = UnitStat::kNone;
  double unit_fraction = 0;  // of zeros (kZero) or saturated units
  // kSaturated: a unit is saturated below `saturated_below` or above
  // `saturated_above` (Sigmoid 0.01 and 0.99 of (0, 1); Tanh -0.99 and 0.99).
  double saturated_below = 0;
  double saturated_above = 0;
};

class LayerProfiler : public TrainObserver {
 public:
  // Hooks every module of `model` (which must outlive the profiler).
  // `stats_every`: sample activation statistics on every N-th step (0:
  // never, timing only).
  explicit LayerProfiler(nn::Module& model, int64_t stats_every = 0);
  ~LayerProfiler() override;
  LayerProfiler(const LayerProfiler&) = delete;
  LayerProfiler& operator=(const LayerProfiler&) = delete;

  // The modules called in training steps so far, in first-call order.
  std::vector<LayerStats> Layers() const;
  int64_t steps() const { return steps_; }
  // Total wall time of those steps, from the model's first forward call to
  // the step's end (loss, optimizer and observers before this one included).
  double step_seconds() const { return step_seconds_; }
  // The per-layer table shown above ("no training steps profiled" if none).
  std::string Table() const;

  void OnAfterBackward(const TrainState& state) override;
  absl::Status OnStep(const TrainState& state, const StepInfo& step) override;

 private:
  using Clock = std::chrono::steady_clock;
  // One call of one module in the current step.
  struct Call {
    size_t layer = 0;
    int64_t flops = 0;
    Clock::time_point forward_start, forward_end, backward_start, backward_end;
    bool backward_started = false, backward_ended = false;
  };

  void PreHook(nn::Module& module);
  void PostHook(nn::Module& module, const autograd::Variable& input,
                const autograd::Variable& output);
  static void Sample(LayerStats& layer, const Tensor& output);

  std::unordered_map<const nn::Module*, std::string> names_;
  std::unordered_map<const nn::Module*, size_t> index_;  // into layers_
  std::vector<LayerStats> layers_;
  autograd::HookHandle hooks_;  // on every module of the model
  // The calls of the step in progress, and the open forward calls (a stack).
  std::vector<Call> calls_;
  std::vector<Call> open_;
  Clock::time_point step_start_;
  Clock::time_point backward_end_;
  bool in_step_ = false;
  bool sampling_ = false;
  const int64_t stats_every_;
  int64_t steps_ = 0;
  double step_seconds_ = 0;
};

}  // namespace dive::train

#endif  // TRAIN_LAYER_PROFILER_H_
