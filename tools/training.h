// File: tools/training.h
// -----------------------------------------------------------------------------
//
// The training loop shared by every `//models/<name>:train` binary: the
// book's recipe (minibatch SGD on mean softmax cross-entropy, train accuracy
// averaged over the epoch in train mode, test accuracy in eval mode), with
// what a real run needs around it:
//
//   * a live progress bar on a terminal, plain log lines otherwise, and the
//     book's line at the end of each epoch:
//       epoch 3: loss 0.412, train acc 0.851, test acc 0.838, 41203.5 examples/sec
//   * after every epoch, in `out_dir`: `model.safetensors` (saved atomically,
//     with the state_dict names of the PyTorch twin), `metrics.csv` and
//     `metrics.png` (loss and accuracy curves drawn by gnuplot);
//   * `resume`: continue from `out_dir/model.safetensors`, after trimming
//     metrics.csv to the checkpoint's epoch. A run killed at any moment
//     (tools/kill_during_save_test.cc) leaves a checkpoint that loads and a
//     CSV that resuming continues without gaps;
//   * divergence: a NaN or Inf loss stops training with an error that names
//     the step and the last good checkpoint (or skips the step when
//     `skip_nonfinite` is set).
//
// Same seed and thread count give the same numbers, run after run.
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

#ifndef TOOLS_TRAINING_H_
#define TOOLS_TRAINING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "datasets/dataset.h"
#include "models/spec.h"
#include "nn/module.h"
#include "optim/distributed/process_group.h"
#include "tensor/gemm.h"
#include "tensor/safetensors.h"

namespace dive::tools {

struct TrainOptions {
  int64_t epochs = 10;
  float lr = 0.1f;
  int64_t batch_size = 256;
  int64_t input_size = 28;
  float weight_decay = 0.0f;
  float momentum = 0.0f;
  int threads = 0;     // 0: all cores
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
  // and examples/sec are over all ranks. See optim/distributed/.
  distributed::ProcessGroup* process_group = nullptr;
};

// OK unless `path` (the value of --`flag`) contains a control character
// (a newline, a tab, ...): InvalidArgument naming the flag and the byte.
absl::Status CheckPathFlag(absl::string_view flag, absl::string_view path);

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
};

struct TrainSummary {
  std::vector<EpochMetrics> epochs;
  int64_t skipped_steps = 0;
};

// Trains a model of `spec` from scratch (or from out_dir when resuming).
absl::StatusOr<TrainSummary> Train(const models::ModelSpec& spec,
                                   const TrainOptions& options,
                                   const InMemoryDataset& train_data,
                                   const InMemoryDataset& test_data);

struct EvalResult {
  double accuracy = 0;
  // confusion[true_label][predicted_label]
  std::vector<std::vector<int64_t>> confusion;
};

// Accuracy and confusion matrix of `model` (switched to eval mode) on `data`
// resized to input_size.
EvalResult Evaluate(nn::Module& model, const InMemoryDataset& data,
                    int64_t input_size, int64_t batch_size,
                    int64_t limit = 0);

// The largest --epochs, and the largest epoch and input size a checkpoint
// may record.
inline constexpr int64_t kMaxEpochs = 1'000'000;
inline constexpr int64_t kMaxInputSize = 1 << 16;

// A checkpoint's tensors and the metadata `Train` records (each 0 or empty
// when absent, as in files converted from PyTorch).
struct Checkpoint {
  SafetensorsFile file;
  std::string model;
  int64_t epoch = 0;
  int64_t input_size = 0;
};

// Reads and checks a checkpoint: the file itself (tensor/safetensors.h: a
// regular file, sizes, CRC) and every metadata field (epoch in
// [0, kMaxEpochs], input_size in [1, kMaxInputSize]). Errors name the file
// and the field.
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path,
                                          bool follow_symlink = true);

// Loads a checkpoint written by `Train` (or converted from PyTorch; a final
// symlink is not followed) into `model`; errors name the file and every
// mismatched key, and leave `model` unchanged.
absl::Status LoadCheckpoint(const std::string& path, nn::Module& model,
                            int64_t* epoch = nullptr);

}  // namespace dive::tools

#endif  // TOOLS_TRAINING_H_
