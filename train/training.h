// File: train/training.h
// -----------------------------------------------------------------------------
//
// The training loop shared by every `//models/<name>:train` binary. Its
// defaults are the book's recipe (minibatch SGD on mean softmax
// cross-entropy, train accuracy averaged over the epoch in train mode, test
// accuracy in eval mode); flags choose what users expect beyond it: Adam or
// AdamW, a step or cosine schedule with linear warm-up, augmentation (random
// flip, torchvision's RandomCrop(size, padding=4)), gradient clipping.
//
// The loop itself only trains: everything around it is a `TrainObserver`
// called after each step and each epoch:
//
//   * progress: a live bar on a terminal, plain log lines otherwise, and the
//     book's line at the end of each epoch:
//       epoch 3: loss 0.412, train acc 0.851, test acc 0.838, 41203.5
//       examples/sec
//   * in `out_dir`: `metrics.csv` and `metrics.png` (loss and accuracy curves
//     drawn by gnuplot) after every epoch;
//   * checkpoints (train/checkpoint.h: the weights with the PyTorch twin's
//     names plus the whole training state) after every epoch, every
//     `checkpoint_every` steps, and when SIGINT or SIGTERM asks the run to
//     stop (`RequestStop`; then `Train` returns Cancelled).
//
// `resume` continues from the checkpoint in `out_dir`: a run stopped or
// killed at any step and resumed ends with weights bit-identical to the
// uninterrupted run (same seed, thread count and kernel path), momentum,
// Adam moments, dropout, augmentation and schedules included; settings that
// would change the run (--optimizer, --lr, ...) are refused, and another
// thread count, kernel path or number of processes is one warning line (the
// run goes on, no longer bit for bit). Without `resume` or `overwrite`, an
// `out_dir` that holds a run is refused before anything in it changes. A NaN or Inf loss stops
// training with an error that names the step and the last good checkpoint (or
// skips the step when `skip_nonfinite` is set).
//
// Launched by mpirun, the trainers train data-parallel over the launched
// processes (`process_group`, set by trainer_main.cc):
//   mpirun -np 2 bazel-bin/models/lenet/train --threads=1
//
// Example:
//
//   TrainOptions options;
//   options.epochs = 1;
//   options.out_dir = "/tmp/lenet";
//   absl::StatusOr<TrainSummary> s = Train(models::LeNetSpec(), options,
//                                          train_data, test_data);

#ifndef TRAIN_TRAINING_H_
#define TRAIN_TRAINING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "datasets/dataset.h"
#include "distributed/process_group.h"
#include "models/spec.h"
#include "nn/module.h"
#include "tensor/gemm.h"
#include "train/checkpoint.h"

namespace dive::train {

enum class OptimizerKind { kSgd, kAdam, kAdamW };
enum class LrScheduleKind { kConstant, kStep, kCosine };

struct TrainOptions {
  int64_t epochs = 10;
  float lr = 0.1f;
  int64_t batch_size = 256;
  int64_t input_size = 28;
  OptimizerKind optimizer = OptimizerKind::kSgd;
  // SGD's and Adam's L2 penalty; AdamW's decoupled decay.
  float weight_decay = 0.0f;
  float momentum = 0.0f;  // SGD only
  // The rate per epoch: constant; times lr_gamma every lr_step_epochs
  // epochs (StepLR); or half a cosine from lr to 0 over `epochs`
  // (CosineAnnealingLR). Then, for the first warmup_epochs (a fraction is
  // allowed), scaled linearly from 1/warm-up steps to 1, step by step.
  LrScheduleKind lr_schedule = LrScheduleKind::kConstant;
  int64_t lr_step_epochs = 0;  // > 0 with kStep
  float lr_gamma = 0.1f;
  double warmup_epochs = 0;
  // Training augmentation: random horizontal flip, random crop after zero
  // padding by 4 (torchvision's RandomCrop(size, padding=4)).
  bool augment_flip = false;
  bool augment_crop = false;
  // Scale the gradients to this global L2 norm when larger (0: off).
  float clip_grad_norm = 0.0f;
  // Also checkpoint every N steps (0: only at each epoch's end).
  int64_t checkpoint_every = 0;
  int threads = 0;  // 0: all cores
  uint64_t seed = 0;
  // Use only the first N training / test examples (0: all).
  int64_t train_limit = 0;
  int64_t test_limit = 0;
  std::string out_dir;  // empty: write nothing
  bool resume = false;
  // Start afresh in an out_dir that already holds a run (its checkpoint or
  // metrics), replacing it; without it (or `resume`) such a directory is
  // refused.
  bool overwrite = false;
  bool skip_nonfinite = false;
  // kBfloat16: mixed precision as PyTorch's bf16 autocast: convolution and
  // Linear (forward and both gradients) multiply bf16 operands with float32
  // sums; weights, optimizer state, batch-norm statistics, softmax, the loss
  // and the checkpoint stay float32 (tensor/gemm.h).
  MatmulPrecision precision = MatmulPrecision::kFloat32;
  // Print per-step progress (a bar on a terminal, else a line every
  // `log_every` steps).
  bool progress = true;
  int64_t log_every = 50;
  // Data-parallel training: the processes training together (not owned;
  // null or a group of one: this process alone). With S ranks, each takes
  // `batch_size` / S examples of every batch (S must divide `batch_size`),
  // gradients are averaged over the ranks, and the run follows the
  // single-process one up to float rounding, except that BatchNorm's batch
  // statistics are per rank and each epoch drops its last partial batch.
  // Rank 0 alone prints and writes `out_dir`; the reported loss, accuracies
  // and examples/sec are over all ranks. See distributed/.
  distributed::ProcessGroup* process_group = nullptr;
  // More observers, called after the built-in ones on rank 0 (not owned).
  std::vector<class TrainObserver*> observers;
};

// The flag spellings of the choices ("sgd", "cosine", "flip,crop") and their
// parsers; a bad value is InvalidArgument naming the flag and the choices.
const char* OptimizerName(OptimizerKind kind);
const char* LrScheduleName(LrScheduleKind kind);
std::string AugmentName(bool flip, bool crop);
absl::StatusOr<OptimizerKind> ParseOptimizer(absl::string_view name);
absl::StatusOr<LrScheduleKind> ParseLrSchedule(absl::string_view name);
absl::Status ParseAugment(absl::string_view spec, bool* flip, bool* crop);

// At most this many compute threads per core: more only slows a run down,
// and tens of thousands make libgomp crash when it cannot create them.
inline constexpr int kMaxThreadsPerCore = 4;

// `requested` (a --threads value; 0 means all cores), capped at
// kMaxThreadsPerCore per core; a cap is logged once, naming the flag.
int CapThreads(int requested);

// Checks every option and returns InvalidArgument naming the flag and the
// bad value, or FailedPrecondition for an out_dir that cannot be written.
absl::Status ValidateOptions(const TrainOptions& options);

struct EpochMetrics {
  int64_t epoch = 0;  // 1-based
  double loss = 0;
  double train_acc = 0;
  double test_acc = 0;
  double seconds = 0;
  double examples_per_sec = 0;
  // The test set's confusion[true_label][predicted_label] (10 x 10).
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
  float lr = 0;
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

// Trains a model of `spec` from scratch (or from out_dir when resuming):
// seeds the default generator with `options.seed` and builds the model.
absl::StatusOr<TrainSummary> Train(const models::ModelSpec& spec,
                                   const TrainOptions& options,
                                   const data::InMemoryDataset& train_data,
                                   const data::InMemoryDataset& test_data);

// Trains `model`, already built (with `options.seed`) from `spec`.
absl::StatusOr<TrainSummary> Train(const models::ModelSpec& spec,
                                   nn::Module& model,
                                   const TrainOptions& options,
                                   const data::InMemoryDataset& train_data,
                                   const data::InMemoryDataset& test_data);

// Asks a running `Train` to checkpoint after its current step and return
// Cancelled; `signal` (SIGINT, SIGTERM) names the reason. Async-signal-safe.
void RequestStop(int signal);

// Installs SIGINT and SIGTERM handlers that call RequestStop; a second
// signal of the same kind ends the process at once.
void InstallStopHandlers();

// The signal of the last stop `Train` honoured (0: none), for the exit code.
int StoppedBySignal();

// True once a stop was requested and not yet honoured by `Train` (what a
// trainer that outlives training, `--dashboard_keep`, waits for).
bool StopRequested();

struct EvalResult {
  double accuracy = 0;
  // confusion[true_label][predicted_label], over the classes of the data
  // and of the model's outputs.
  std::vector<std::vector<int64_t>> confusion;
};

// Accuracy and confusion matrix of `model` (switched to eval mode) on `data`
// resized to input_size.
EvalResult Evaluate(nn::Module& model, const data::InMemoryDataset& data,
                    int64_t input_size, int64_t batch_size, int64_t limit = 0);

}  // namespace dive::train

#endif  // TRAIN_TRAINING_H_
