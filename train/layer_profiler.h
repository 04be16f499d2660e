// File: train/layer_profiler.h
// -----------------------------------------------------------------------------
//
// `LayerProfiler` times every module of a model during training, counts its
// arithmetic and memory traffic, and samples what its outputs look like:
// through module hooks (nn/module.h) and the autograd engine's backward
// observer (autograd/variable.h). Nothing in the model or the loop changes,
// and removing the profiler removes every hook.
//
// For each module, in the order of the first training step's calls:
//
//   * forward: from its forward pre-hook to its forward hook;
//   * backward: the execution time of the graph nodes its forward created
//     (the pre-hook sets autograd's NodeTag to the module, the forward hook
//     restores the caller's; the engine's BackwardObserver times each
//     node), plus its submodules'. A module's backward is its own: a
//     residual block's 1x1 shortcut is charged its convolution, not the
//     main path's, although both read one input. Nodes of no module (the
//     loss) count in no layer;
//   * FLOPs and bytes moved, forward and backward (nn/flops.h `LayerCostOf`
//     from the call's input and output shapes), its submodules' included;
//   * every `stats_every` steps, the mean and standard deviation of its
//     output and, for ReLU, the fraction of zeros (dead units) and, for
//     Sigmoid and Tanh, the fraction saturated (|y| past 0.99 of its
//     range, where the derivative is below 0.02): the book's lessons on dead
//     units and vanishing gradients, measured.
//
// Only training-mode calls with gradients count (evaluation passes do not).
// As a `TrainObserver`, it closes each step's measurements in `OnStep`;
// `Table()` is the `--profile` report, a roofline: each layer's GFLOP/s
// forward and backward, its share of the machine's peak, the bytes it
// moves, its arithmetic intensity (FLOP per byte) and whether that is
// below the machine's ridge point (memory-bound: no kernel can reach the
// peak at that intensity) or above it (compute-bound). The peak (FMA, or
// VDPBF16PS under bf16 on a CPU with AVX512-BF16) and the DRAM bandwidth
// (STREAM triad) are measured in this process (tensor/peak/peak.h) on
// first use, for the precision and threads of the first profiled step.
//
//   Per-layer time over 235 training steps, mean per step: 41.20 ms
//   Roofline: peak 436.2 GFLOP/s (fma, 2 threads), ...
//   Module              Fwd ms  Bwd ms  Share  Fwd GF/s  Bwd GF/s ...
//   Sequential           12.10   25.30  90.8%      40.1      35.2 ...
//     0 Conv2d(1, 6, ...) 2.01    4.10  14.8%      15.0      12.1 ...
//   ...
//   (loss, optimizer, data and the rest)                  9.2%
//
// The backward observer is installed on the thread that constructs the
// profiler (the training loop's), for the profiler's lifetime.
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
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "autograd/hook_handle.h"
#include "autograd/variable.h"
#include "nn/module.h"
#include "tensor/gemm.h"
#include "train/observer.h"

namespace dive::train {

// What an activation statistic counts, by module kind.
enum class UnitStat { kNone, kZero, kSaturated };

// The machine's roof and slope: peak FLOP/s of the instruction the products
// run on, and the memory bandwidth.
struct Roofline {
  std::string peak_kind;  // "fma" or "vdpbf16ps"
  int threads = 1;
  double peak_flops = 0;  // FLOP/s
  double bandwidth = 0;   // bytes/s (STREAM triad)
  std::string cpu;        // the CPU's brand string
  // FLOP per byte above which a kernel can be compute-bound.
  double ridge() const { return bandwidth > 0 ? peak_flops / bandwidth : 0; }
};

// Measures the roofline for `precision` on `threads` threads (about 0.2 s:
// the peak loop, then a triad over three 64 MiB arrays).
Roofline MeasureRoofline(MatmulPrecision precision, int threads);

struct LayerStats {
  std::string name;            // dotted, "" for the model itself
  std::string description;     // Module::Describe()
  int depth = 0;               // nesting depth of the call
  int parent = -1;             // index of the calling layer in Layers()
  int64_t calls = 0;           // training-step calls so far
  double forward_seconds = 0;  // totals over those calls
  // The execution time of the backward nodes its calls created, its
  // submodules' included.
  double backward_seconds = 0;
  // The backward nodes its own code created (submodules' not included)
  // that the engine executed.
  int64_t backward_nodes = 0;
  // nn/flops.h LayerCostOf, summed over the calls, submodules included.
  int64_t forward_flops = 0;
  int64_t backward_flops = 0;
  int64_t forward_bytes = 0;
  int64_t backward_bytes = 0;
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

// A layer on the roofline, from its forward and backward totals.
struct LayerRoofline {
  int64_t bytes = 0;            // forward and backward, over all calls
  double intensity = 0;         // FLOP per byte
  bool compute_bound = false;   // intensity at or above the ridge
  double fraction_of_peak = 0;  // achieved FLOP/s over the peak
  // Over min(peak, intensity x bandwidth): how near its own ceiling it is.
  double fraction_of_roof = 0;
};
LayerRoofline RooflineOf(const LayerStats& layer, const Roofline& roof);

class LayerProfiler : public TrainObserver, private autograd::BackwardObserver {
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

  // The roofline the table is against: the one set, or else measured on
  // the first call (`MeasureRoofline` with the first profiled step's
  // precision and threads).
  const Roofline& roofline() const;
  // Uses `roofline` instead of measuring (tests; a known machine).
  void SetRoofline(Roofline roofline) { roofline_ = std::move(roofline); }

  absl::Status OnStep(const TrainState& state, const StepInfo& step) override;

 private:
  using Clock = std::chrono::steady_clock;
  // One call of one module in the current step.
  struct Call {
    size_t layer = 0;
    const void* caller_tag = nullptr;  // the NodeTag to restore
    Clock::time_point forward_start, forward_end;
  };
  // What a layer's own calls and nodes did in the current step.
  struct Own {
    double backward_seconds = 0;
    int64_t backward_nodes = 0;
    int64_t forward_flops = 0, backward_flops = 0;
    int64_t forward_bytes = 0, backward_bytes = 0;
  };

  void PreHook(nn::Module& module);
  void PostHook(nn::Module& module, const autograd::Variable& input,
                const autograd::Variable& output);
  static void Sample(LayerStats& layer, const Tensor& output);
  // autograd::BackwardObserver: times each node of a backward pass.
  void BeforeNode(const autograd::GradNode& node) override;
  void AfterNode(const autograd::GradNode& node) override;

  std::unordered_map<const nn::Module*, std::string> names_;
  std::unordered_map<const nn::Module*, size_t> index_;  // into layers_
  std::vector<LayerStats> layers_;
  autograd::HookHandle hooks_;  // on every module of the model
  // The calls of the step in progress, and the open forward calls (a stack).
  std::vector<Call> calls_;
  std::vector<Call> open_;
  std::vector<Own> own_;  // per layer, this step
  autograd::BackwardObserver* previous_observer_ = nullptr;
  Clock::time_point step_start_;
  Clock::time_point node_start_;
  bool in_step_ = false;
  // For the roofline: the first profiled step's precision and threads.
  MatmulPrecision precision_ = MatmulPrecision::kFloat32;
  int threads_ = 1;
  mutable std::optional<Roofline> roofline_;
  bool sampling_ = false;
  const int64_t stats_every_;
  int64_t steps_ = 0;
  double step_seconds_ = 0;
};

}  // namespace dive::train

#endif  // TRAIN_LAYER_PROFILER_H_
