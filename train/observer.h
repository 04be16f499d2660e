// File: train/observer.h
// -----------------------------------------------------------------------------
//
// `TrainObserver`: what the training loop (train/training.h) calls after
// each step and each epoch on rank 0, and the numbers it hands over. The
// loop itself only trains; everything around it observes: progress
// (train/progress.h), metrics.csv and its plot (train/metrics_log.h),
// checkpoints (train/checkpoint_observer.h), the per-layer profiler
// (train/layer_profiler.h) and the live dashboard (train/dashboard).
//
// Example:
//
//   class LossPrinter : public TrainObserver {
//    public:
//     absl::Status OnStep(const TrainState& state,
//                         const StepInfo& step) override {
//       std::printf("%ld: %f\n", state.position.global_step, step.loss);
//       return absl::OkStatus();
//     }
//   };

#ifndef TRAIN_OBSERVER_H_
#define TRAIN_OBSERVER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "train/checkpoint.h"

namespace dive::train {

struct EpochMetrics {
  int64_t epoch = 0;  // 1-based
  double loss = 0;
  double train_acc = 0;
  double test_acc = 0;
  double seconds = 0;
  double examples_per_sec = 0;
  // The test set's confusion[true_label][predicted_label], over the model's
  // outputs.
  std::vector<std::vector<int64_t>> confusion;
};

struct TrainSummary {
  std::vector<EpochMetrics> epochs;
  int64_t skipped_steps = 0;
};

// What an observer sees after a step: the state after it (its position
// counts the step) and the step's own numbers.
struct StepInfo {
  int64_t steps_per_epoch = 0;
  int64_t batch_size = 0;  // over all ranks
  double loss = 0;         // the batch's mean, over all ranks
  double accuracy = 0;     // the batch's, over all ranks
  float lr = 0;            // the first parameter group's
};

// Called on rank 0 by `Train`, in the order registered; an error ends
// training with that error.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  // After the step's backward pass, before the gradients are averaged over
  // the ranks and the optimizer steps (Lightning's on_after_backward).
  virtual void OnAfterBackward(const TrainState& state) {}
  virtual absl::Status OnStep(const TrainState& state, const StepInfo& step) {
    return absl::OkStatus();
  }
  // After the test set is evaluated; `state.position` is still inside the
  // epoch (its last step), `m.epoch` is 1-based.
  virtual absl::Status OnEpoch(const TrainState& state, const EpochMetrics& m) {
    return absl::OkStatus();
  }
  // The run was asked to stop (RequestStop) after the step `state` is at.
  virtual absl::Status OnStop(const TrainState& state) {
    return absl::OkStatus();
  }
};

}  // namespace dive::train

#endif  // TRAIN_OBSERVER_H_
