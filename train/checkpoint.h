// File: train/checkpoint.h
// -----------------------------------------------------------------------------
//
// A training run's checkpoint: the whole state a run needs to continue
// exactly where it stopped, saved in its directory as a pair of files:
//
//   model.safetensors        the weights, with the state_dict names of the
//                            PyTorch twin (loads into PyTorch as it is), and
//                            metadata model, epoch, input_size, global_step:
//                            what tools/eval and tools/export_onnx read;
//   train_state.safetensors  the optimizer's state (Optimizer::StateDict), the
//                            position (epoch, step, global step), the running
//                            totals of the epoch in progress, the settings
//                            a resumed run must keep, what it ran on (batches
//                            per epoch, processes, threads, kernel path) and
//                            the CRC-32 of the weights it belongs with.
//
// Both files carry CRC-32s of their header and of their data
// (tensor/safetensors.h), so every byte is checked; every metadata value is
// range-checked, against the run's data and batch size too (`CheckGeometry`).
// The state itself, its encoding and the checks a resume makes of it are
// train/train_state.h's (included here); this file is the pair's protocol:
// saving, committing, reading and publishing it.
//
// The learning rate is a function of the position (optim/lr_schedule.h:
// the epoch, and the global step for warm-up). Every random stream of a run is a
// function of the seed and the position: the shuffle of (seed, epoch),
// augmentation of (seed, epoch, shard, batch) (datasets/data_loader.h) and
// dropout of (seed, rank, global step), reseeded before each step. So the
// position restores them, on any number of ranks.
//
// One commit: a save writes the new weights whole (synced) as
// "model.safetensors.pending", then commits by renaming the new state into
// place (the one step that makes the new pair the run's checkpoint: the
// state names its weights by CRC), then publishes the weights by renaming
// the pending file over model.safetensors. A kill at any moment leaves
// either the old pair or the new one: before the commit, the old state with
// its weights in model.safetensors (a leftover pending file is not named by
// it); after it, the new state with its weights in model.safetensors or, if
// the kill came before the publishing rename, in the pending file, which
// `ReadRun` finds and `PublishPendingWeights` puts in place. model.safetensors
// itself is always a whole file of the last published weights.
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
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nn/module.h"
#include "optim/optimizer.h"
#include "tensor/safetensors.h"
#include "train/train_state.h"

namespace dive::train {

inline constexpr char kWeightsFile[] = "model.safetensors";
inline constexpr char kPendingWeightsFile[] = "model.safetensors.pending";

// The largest input size a checkpoint may record (kMaxEpochs, the largest
// epoch, is train/train_state.h's).
inline constexpr int64_t kMaxInputSize = 1 << 16;

// Writes `state` as the pair in `dir`, in one commit (see above).
// `model_name` and `input_size` go into the weights' metadata. `dir` must
// hold no pending weights that its state names (they would be replaced
// before the new state commits): `Train` publishes them on --resume and
// removes any other before its first save.
absl::Status SaveCheckpoint(const std::string& dir, const TrainState& state,
                            const std::string& model_name, int64_t input_size);

// A checkpoint's weights and the metadata the trainer records (each 0 or
// empty when absent, as in files converted from PyTorch).
struct Checkpoint {
  SafetensorsFile file;
  std::string model;
  int64_t epoch = 0;
  int64_t input_size = 0;
  int64_t global_step = 0;
};

// Reads and checks a weights file: the file itself (tensor/safetensors.h: a
// regular file, sizes, CRCs), every metadata field (epoch in [0,
// kMaxEpochs], input_size in [1, kMaxInputSize], global_step in [0, 2^62])
// and that every float is finite (the weights of a diverged run are
// refused). Errors name the file and field.
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path,
                                          bool follow_symlink = true);

// Loads a weights file written by the trainer (or converted from PyTorch; a
// final symlink is not followed) into `model`; errors name the file and
// every mismatched key, and leave `model` unchanged.
absl::Status LoadCheckpoint(const std::string& path, nn::Module& model,
                            int64_t* epoch = nullptr);

// A run directory's checkpoint: the weights and, unless the run predates
// training-state files (or came from PyTorch), their state. With a state,
// the weights are those it names: model.safetensors, or the pending file
// of a save cut short between its commit and its publishing rename
// (`pending`). DataLoss when neither holds them, or when their metadata
// (epoch, global_step) disagree with the state's. Reads only.
struct SavedRun {
  Checkpoint weights;
  std::optional<SavedTrainState> state;
  bool pending = false;  // the weights are in model.safetensors.pending
};
absl::StatusOr<SavedRun> ReadRun(const std::string& dir);

// Completes a save cut short between its two renames: renames
// model.safetensors.pending over model.safetensors. For a run whose
// `ReadRun` said `pending`, once the run is accepted.
absl::Status PublishPendingWeights(const std::string& dir);

// What the checkpoint in `dir` is, for a message about the directory:
// "a checkpoint at epoch 3 step 17", "a checkpoint after epoch 2", with
// ", whose weights a save cut short left in model.safetensors.pending
// (--resume completes that save)" when so; "a checkpoint that cannot be
// resumed (<why>)"; "" when `dir` holds neither weights nor a state.
std::string DescribeCheckpoint(const std::string& dir);

}  // namespace dive::train

#endif  // TRAIN_CHECKPOINT_H_
