#include "train/checkpoint_observer.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace dive::train {

CheckpointObserver::CheckpointObserver(std::string dir, std::string model,
                                       int64_t input_size, int64_t every,
                                       TrainPosition resumed_at)
    : dir_(std::move(dir)),
      model_(std::move(model)),
      input_size_(input_size),
      every_(every),
      last_(resumed_at),
      any_(resumed_at.global_step > 0 || resumed_at.epoch > 0) {}

absl::Status CheckpointObserver::OnStep(const TrainState& state,
                                        const StepInfo&) {
  if (every_ == 0 || state.position.global_step % every_ != 0) {
    return absl::OkStatus();
  }
  return Save(state);
}

absl::Status CheckpointObserver::OnEpoch(const TrainState& state,
                                         const EpochMetrics&) {
  TrainState done = state;  // the position after the epoch
  done.position.epoch += 1;
  done.position.step = 0;
  done.totals = {};
  return Save(done);
}

absl::Status CheckpointObserver::OnStop(const TrainState& state) {
  return Save(state);
}

std::string CheckpointObserver::LastGood() const {
  if (!any_) return "none";
  return absl::StrCat(
      dir_, "/", kWeightsFile, " (epoch ", last_.epoch,
      last_.step > 0 ? absl::StrCat(", step ", last_.step) : "", ")");
}

absl::Status CheckpointObserver::Save(const TrainState& state) {
  // A step with a finite loss can still leave Inf or NaN weights: such a
  // model is not saved as a good checkpoint.
  if (absl::Status s = CheckFinite(state.model->StateDict()); !s.ok()) {
    return absl::AbortedError(absl::StrCat(
        "training diverged: at epoch ", state.position.epoch + 1, " step ",
        state.position.step, " the model's ", s.message(),
        "; last good checkpoint: ", LastGood(), ". Lower --lr"));
  }
  if (absl::Status s = SaveCheckpoint(dir_, state, model_, input_size_);
      !s.ok()) {
    return s;
  }
  last_ = state.position;
  any_ = true;
  return absl::OkStatus();
}

}  // namespace dive::train
