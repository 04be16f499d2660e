// File: train/checkpoint_observer.h
// -----------------------------------------------------------------------------
//
// `CheckpointObserver` saves a run's checkpoint pair (train/checkpoint.h)
// after every epoch (after the metrics row: a kill in between leaves a row
// that resuming drops and writes again, never a gap), every `every` steps
// and when the run is asked to stop. A model whose weights are no longer
// finite is never saved: that save ends the run with an error naming the
// last good checkpoint.
//
// Example:
//
//   CheckpointObserver checkpoints("/tmp/lenet", "lenet", 28, /*every=*/0,
//                                  state.position);
//   options.observers.push_back(&checkpoints);

#ifndef TRAIN_CHECKPOINT_OBSERVER_H_
#define TRAIN_CHECKPOINT_OBSERVER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "train/checkpoint.h"
#include "train/observer.h"

namespace dive::train {

class CheckpointObserver : public TrainObserver {
 public:
  // Saves into `dir` the weights of `model` (name and input size recorded
  // in their metadata); `resumed_at` is where the run starts (a resumed
  // run's checkpoint is its last good one).
  CheckpointObserver(std::string dir, std::string model, int64_t input_size,
                     int64_t every, TrainPosition resumed_at);

  absl::Status OnStep(const TrainState& state, const StepInfo&) override;
  absl::Status OnEpoch(const TrainState& state, const EpochMetrics&) override;
  absl::Status OnStop(const TrainState& state) override;

  // "<dir>/model.safetensors (epoch 2, step 17)", or "none".
  std::string LastGood() const;

 private:
  absl::Status Save(const TrainState& state);

  const std::string dir_, model_;
  const int64_t input_size_, every_;
  TrainPosition last_;
  bool any_;
};

}  // namespace dive::train

#endif  // TRAIN_CHECKPOINT_OBSERVER_H_
