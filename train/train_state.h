// File: train/train_state.h
// -----------------------------------------------------------------------------
//
// A run's training state: where it is (`TrainPosition`), the running totals
// of the epoch in progress, what it must not change (`settings`) and what it
// ran on (`RunEnvironment`), and its encoding as train_state.safetensors
// with every check a resume makes of it:
//
//   EncodeTrainState / DecodeTrainState  the file's bytes and back (every
//                       field required and range-checked, each against the
//                       others; both checksums);
//   CheckGeometry       the position against the run's data and batch size;
//   CheckSettings       the settings against the resuming run's;
//   RankCountChange     another number of processes: what that changes;
//   ExactnessWarning    other threads or kernels: not bit for bit;
//   RestoreTrainState   the saved state into a live one.
//
// How the state and the weights are saved and read as one pair (the commit,
// the pending weights) is train/checkpoint.h's.
//
// Example:
//
//   std::string bytes = EncodeTrainState(state, weights_crc32);
//   absl::StatusOr<SavedTrainState> saved = DecodeTrainState(bytes, "rank 0");
//   if (saved.ok()) s = RestoreTrainState(*saved, state);

#ifndef TRAIN_TRAIN_STATE_H_
#define TRAIN_TRAIN_STATE_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nn/module.h"
#include "optim/optimizer.h"
#include "tensor/tensor.h"

namespace dive::train {

inline constexpr char kTrainStateFile[] = "train_state.safetensors";

// The largest epoch a checkpoint may record.
inline constexpr int64_t kMaxEpochs = 1'000'000;
// The largest count a checkpoint may record (steps, examples).
inline constexpr int64_t kMaxCount = int64_t{1} << 62;

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

// What a run ran on. A resume must continue the run's epochs
// (`CheckGeometry`); with other processes, threads or kernels it goes on,
// but no longer bit for bit (`RankCountChange`, `ExactnessWarning`).
struct RunEnvironment {
  int64_t steps_per_epoch = 0;  // batches per epoch, over all processes
  int64_t processes = 1;
  int64_t threads = 1;  // compute threads (tensor.h's GetNumThreads)
  std::string kernels;  // the kernel path, tensor/cpu.h's IsaName
};

struct TrainState {
  nn::Module* model = nullptr;            // not owned
  optim::Optimizer* optimizer = nullptr;  // not owned
  TrainPosition position;
  EpochTotals totals;
  int64_t skipped_steps = 0;
  // What a resumed run must not change ("optimizer" -> "adam", ...).
  std::map<std::string, std::string> settings;
  RunEnvironment environment;
};

// The contents of train_state.safetensors, checked.
struct SavedTrainState {
  TrainPosition position;
  EpochTotals totals;
  int64_t skipped_steps = 0;
  std::map<std::string, Tensor> optimizer;
  std::map<std::string, std::string> settings;
  RunEnvironment environment;
  uint32_t weights_crc32 = 0;
};

// The training-state file as bytes and back, for a rank that has no file
// (data-parallel ranks get rank 0's). Decoding checks the whole file (both
// checksums) and every field, each against the others (step within the
// epoch's batches, skipped steps and the step within the global step,
// correct within seen, a known kernel path, ...); every field is required.
// Errors are DataLoss naming `source`, the field and its value.
std::string EncodeTrainState(const TrainState& state, uint32_t weights_crc32);
absl::StatusOr<SavedTrainState> DecodeTrainState(absl::string_view bytes,
                                                 absl::string_view source);

// OK when the position and totals of `saved` are ones a run over
// `examples` training examples in batches of `batch_size` could have
// written: steps_per_epoch is floor or ceil(examples / batch_size) (the
// number of processes decides), global_step - step is `epoch` such epochs,
// seen is at most the examples `step` batches hold. Else DataLoss naming
// `source`, the field, its value and the bounds.
absl::Status CheckGeometry(const SavedTrainState& saved, int64_t examples,
                           int64_t batch_size, absl::string_view source);

// Puts `saved` into `state`: the optimizer's state (all or nothing), the
// position and totals. `state.settings` and
// `state.environment` are not touched; compare them with `CheckSettings`,
// `RankCountChange` and `ExactnessWarning` first.
absl::Status RestoreTrainState(const SavedTrainState& saved, TrainState& state);

// OK when every setting in `current` is recorded in `saved` with the same
// value and `saved` records no other; else DataLoss naming the state file
// of `dir` and the first setting it lacks ("train_state.safetensors records
// no setting.seed"), or InvalidArgument listing each change:
// "--<flag>=<now> (it was trained with --<flag>=<then>), ...: the run in
// <dir> would not be the run it continues; ...".
absl::Status CheckSettings(const std::map<std::string, std::string>& saved,
                           const std::map<std::string, std::string>& current,
                           const std::string& dir);

// "" when a run resumed on `now` has the threads and kernel path of the run
// of `saved`; else one line naming each difference and saying that the
// result will not be bit-identical to the uninterrupted run's (sums are then
// taken in another order). Another number of processes is
// `RankCountChange`'s line.
std::string ExactnessWarning(const RunEnvironment& saved,
                             const RunEnvironment& now);

// "" when a run resumed on `now` has as many processes (ranks) as the run of
// `saved`; else one line, "the rank count changed from <A> to <B> ...",
// saying what that changes in a run of global batch `batch_size` (which a
// resume keeps, and with it the learning rate and schedule): each step still
// takes the same examples of the epoch's shuffled order, but they are split
// over the ranks otherwise, batch_size / B per rank instead of
// batch_size / A, so the data order each rank sees and the batch split are no
// longer the uninterrupted run's, nor (unless `sync_batch_norm`) BatchNorm's
// per-rank statistics, nor the weights bit for bit; and, where the batches
// per epoch change (one process takes the last partial batch, several drop
// it), how many there now are.
std::string RankCountChange(const RunEnvironment& saved,
                            const RunEnvironment& now, int64_t batch_size,
                            bool sync_batch_norm);

// OK, or InvalidArgument "tensor '<name>' holds <value> at element <i> of
// <n>" for the first NaN or Inf among the float tensors.
absl::Status CheckFinite(const std::map<std::string, Tensor>& tensors);

// Reads the metadata integer `key` of `metadata` into `value`, as both files
// of a checkpoint record theirs: it must be in [min, max] (`max_name`, when
// given, says where max comes from). Otherwise DataLoss "has no metadata
// <key>" or "metadata <key> "<value>" is not an integer in [min, max]".
absl::Status ReadMetadataInt(const std::map<std::string, std::string>& metadata,
                             const char* key, int64_t min, int64_t max,
                             int64_t* value, const char* max_name = nullptr);

}  // namespace dive::train

#endif  // TRAIN_TRAIN_STATE_H_
