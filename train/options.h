// File: train/options.h
// -----------------------------------------------------------------------------
//
// `TrainOptions`: everything a training run can be asked, as the trainer
// binaries' flags spell it (train/trainer_main.cc), the flag spellings of
// its choices and their parsers, and `ValidateOptions`, which checks every
// option without touching anything (the run directory is prepared by
// train/run_dir.h once the options are known to be good).
//
// Example:
//
//   TrainOptions o;
//   o.lr = 0.05f;
//   o.lr_schedule = *ParseLrSchedule("cosine");
//   if (absl::Status s = ValidateOptions(o); !s.ok()) return s;

#ifndef TRAIN_OPTIONS_H_
#define TRAIN_OPTIONS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "distributed/data_parallel.h"
#include "distributed/process_group.h"
#include "tensor/gemm.h"
#include "tensor/memory_format.h"

namespace dive::train {

class TrainObserver;  // train/observer.h

enum class OptimizerKind { kSgd, kAdam, kAdamW };
enum class LrScheduleKind { kConstant, kStep, kCosine };

struct TrainOptions {
  int64_t epochs = 10;
  // The base learning rate (optim/lr_schedule.h scales it).
  float lr = 0.1f;
  // The global batch: over all ranks of a data-parallel run.
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
  // Under bf16, the layout oneDNN's convolutions keep the activations in
  // for the run (tensor/conv.h SetConvMemoryFormat); the trainers' default
  // is the model's (ModelSpec::channels_last_training).
  MemoryFormat memory_format = MemoryFormat::kContiguous;
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
  // How the gradients travel between the ranks: bucket size, all-reduce
  // overlapped with the backward pass, bf16 compression
  // (distributed/data_parallel.h).
  distributed::DataParallelOptions data_parallel;
  // With several ranks: every BatchNorm normalizes with the statistics of
  // the whole global batch (distributed/sync_batch_norm.h).
  bool sync_batch_norm = false;
  // More observers, called after the built-in ones on rank 0 (not owned).
  std::vector<TrainObserver*> observers;
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
// bad value. Reads and changes nothing outside `options`.
absl::Status ValidateOptions(const TrainOptions& options);

// The settings a resumed run must keep, as the flags spell them
// ("optimizer" -> "adam", "lr" -> "0.1", ...): what the checkpoint records.
std::map<std::string, std::string> ResumeSettings(const TrainOptions& options);

}  // namespace dive::train

#endif  // TRAIN_OPTIONS_H_
