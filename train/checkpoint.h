// File: train/checkpoint.h
// -----------------------------------------------------------------------------
//
// A training run's checkpoint: the whole state a run needs to continue
// exactly where it stopped, saved in its directory as one consistent pair of
// files:
//
//   model.safetensors        the weights, with the state_dict names of the
//                            PyTorch twin (loads into PyTorch as it is), and
//                            metadata model, epoch, input_size, global_step;
//   train_state.safetensors  the optimizer's state (Optimizer::StateDict), the
//                            position (epoch, step, global step), the running
//                            totals of the epoch in progress, the settings
//                            a resumed run must keep, and the CRC-32 of the
//                            weights it belongs with.
//
// The learning-rate schedule's state is the position (`LrSchedule::SetEpoch`,
// warm-up counted in global steps). Every random stream of a run is a
// function of the seed and the position: the shuffle of (seed, epoch),
// augmentation of (seed, epoch, shard, batch) (datasets/data_loader.h) and
// dropout of (seed, rank, global step), reseeded before each step. So the
// position restores them, on any number of ranks.
//
// A kill at any moment leaves a pair that loads: the weights are written to
// "model.safetensors.tmp" and synced, then the state is renamed into place,
// then the weights are. A kill between the two renames leaves a state that
// names the complete weights in the .tmp file; `RecoverCheckpoint` finishes
// that rename before a resume reads the pair.
//
// Example:
//
//   TrainState state;
//   state.model = &model;
//   state.optimizer = &sgd;
//   absl::Status s = SaveCheckpoint("/tmp/run", state, "lenet", 28);
//   absl::StatusOr<SavedRun> run = ReadRun("/tmp/run");
//   if (run.ok() && run->state) s = RestoreTrainState(*run->state, state);

#ifndef TRAIN_CHECKPOINT_H_
#define TRAIN_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nn/module.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "tensor/safetensors.h"

namespace dive::train {

inline constexpr char kWeightsFile[] = "model.safetensors";
inline constexpr char kTrainStateFile[] = "train_state.safetensors";

// The largest epoch and input size a checkpoint may record.
inline constexpr int64_t kMaxEpochs = 1'000'000;
inline constexpr int64_t kMaxInputSize = 1 << 16;

// Where a run is: `epoch` epochs complete and `step` batches of the next one
// done, `global_step` batches in all.
struct TrainPosition {
  int64_t epoch = 0;
  int64_t step = 0;
  int64_t global_step = 0;
};

// The running totals of the epoch in progress, so that the epoch's line and
// CSV row after a resume cover the whole epoch.
struct EpochTotals {
  double loss_sum = 0;  // sum of batch-mean losses times batch sizes
  int64_t correct = 0;
  int64_t seen = 0;
  double seconds = 0;
};

struct TrainState {
  nn::Module* model = nullptr;            // not owned
  optim::Optimizer* optimizer = nullptr;  // not owned
  optim::LrSchedule* schedule = nullptr;  // not owned; null: a constant rate
  TrainPosition position;
  EpochTotals totals;
  int64_t skipped_steps = 0;
  // What a resumed run must not change ("optimizer" -> "adam", ...).
  std::map<std::string, std::string> settings;
};

// Writes `state` as the pair in `dir` (see above). `model_name` and
// `input_size` go into the weights' metadata.
absl::Status SaveCheckpoint(const std::string& dir, const TrainState& state,
                            const std::string& model_name, int64_t input_size);

// A checkpoint's weights and the metadata the trainer records (each 0 or
// empty when absent, as in files converted from PyTorch).
struct Checkpoint {
  SafetensorsFile file;
  std::string model;
  int64_t epoch = 0;
  int64_t input_size = 0;
};

// Reads and checks a weights file: the file itself (tensor/safetensors.h: a
// regular file, sizes, CRC), every metadata field (epoch in [0, kMaxEpochs],
// input_size in [1, kMaxInputSize]) and that every float is finite (the
// weights of a diverged run are refused). Errors name the file and field.
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path,
                                          bool follow_symlink = true);

// Loads a weights file written by the trainer (or converted from PyTorch; a
// final symlink is not followed) into `model`; errors name the file and
// every mismatched key, and leave `model` unchanged.
absl::Status LoadCheckpoint(const std::string& path, nn::Module& model,
                            int64_t* epoch = nullptr);

// The contents of train_state.safetensors, checked.
struct SavedTrainState {
  TrainPosition position;
  EpochTotals totals;
  int64_t skipped_steps = 0;
  std::map<std::string, Tensor> optimizer;
  std::map<std::string, std::string> settings;
  uint32_t weights_crc32 = 0;
};

// The training-state file as bytes and back, for a rank that has no file
// (data-parallel ranks get rank 0's). Decoding checks every field; errors
// name `source`.
std::string EncodeTrainState(const TrainState& state, uint32_t weights_crc32);
absl::StatusOr<SavedTrainState> DecodeTrainState(absl::string_view bytes,
                                                 absl::string_view source);

// A run directory's checkpoint: the weights and, unless the run predates
// training-state files (or came from PyTorch), their state. DataLoss when
// the state belongs with other weights.
struct SavedRun {
  Checkpoint weights;
  std::optional<SavedTrainState> state;
};
absl::StatusOr<SavedRun> ReadRun(const std::string& dir);

// Completes a save that was killed between its two renames (see above):
// when the state names the weights in "model.safetensors.tmp", renames them
// into place. OK when there is nothing to do.
absl::Status RecoverCheckpoint(const std::string& dir);

// Puts `saved` into `state`: the optimizer's state (all or nothing), the
// schedule's epoch, the position and totals. `state.settings` are not
// touched; compare them with `CheckSettings` first.
absl::Status RestoreTrainState(const SavedTrainState& saved, TrainState& state);

// OK when every setting recorded in `saved` has the same value in `current`;
// else InvalidArgument listing each change: "--<flag>=<now> (it was trained
// with --<flag>=<then>), ...: the run in <dir> would not be the run it
// continues; ...".
absl::Status CheckSettings(const std::map<std::string, std::string>& saved,
                           const std::map<std::string, std::string>& current,
                           const std::string& dir);

// OK, or InvalidArgument "tensor '<name>' holds <value> at element <i> of
// <n>" for the first NaN or Inf among the float tensors.
absl::Status CheckFinite(const std::map<std::string, Tensor>& tensors);

}  // namespace dive::train

#endif  // TRAIN_CHECKPOINT_H_
