// File: train/training.h
// -----------------------------------------------------------------------------
//
// `Train`: the training loop shared by every `//models/<name>:train` binary.
// Its defaults are the book's recipe (minibatch SGD on mean softmax
// cross-entropy, train accuracy averaged over the epoch in train mode, test
// accuracy in eval mode); options (train/options.h) choose what users expect
// beyond it: Adam or AdamW, a step or cosine schedule with linear warm-up,
// augmentation (random flip, torchvision's RandomCrop(size, padding=4)),
// gradient clipping, bf16 matmuls.
//
// The loop itself only trains. Everything around it is a `TrainObserver`
// (train/observer.h) called after each step and each epoch:
//
//   * progress (train/progress.h): a live bar on a terminal, plain log lines
//     otherwise, and the book's line at the end of each epoch:
//       epoch 3: loss 0.412, train acc 0.851, test acc 0.838, 41203.5
//       examples/sec
//   * in `out_dir` (train/run_dir.h): `metrics.csv` and `metrics.png`
//     (train/metrics_log.h) after every epoch;
//   * checkpoints (train/checkpoint_observer.h: the weights with the PyTorch
//     twin's names plus the whole training state) after every epoch, every
//     `checkpoint_every` steps, and when SIGINT or SIGTERM asks the run to
//     stop (train/stop.h; then `Train` returns Cancelled).
//
// `resume` continues from the checkpoint in `out_dir` (train/resume.h): a
// run stopped or killed at any step and resumed ends with weights
// bit-identical to the uninterrupted run (same seed, thread count and kernel
// path), momentum, Adam moments, dropout, augmentation and schedules
// included; settings that would change the run (--optimizer, --lr, ...) are
// refused. Without `resume` or `overwrite`, an `out_dir` that holds a run is
// refused before anything in it changes. A NaN or Inf loss stops training
// with an error that names the step and the last good checkpoint (or skips
// the step when `skip_nonfinite` is set).
//
// Launched by mpirun, the trainers train data-parallel over the launched
// processes (`process_group`, set by trainer_main.cc; train/replicas.h):
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

#include "absl/status/statusor.h"
#include "datasets/dataset.h"
#include "models/spec.h"
#include "nn/module.h"
#include "train/observer.h"
#include "train/options.h"

namespace dive::train {

// Trains a model of `spec` from scratch (or from out_dir when resuming):
// seeds the default generator with `options.seed` and builds the model.
absl::StatusOr<TrainSummary> Train(const models::ModelSpec& spec,
                                   const TrainOptions& options,
                                   const data::Dataset& train_data,
                                   const data::Dataset& test_data);

// Trains `model`, already built (with `options.seed`) from `spec`. The
// datasets are read, never copied, while `Train` runs.
absl::StatusOr<TrainSummary> Train(const models::ModelSpec& spec,
                                   nn::Module& model,
                                   const TrainOptions& options,
                                   const data::Dataset& train_data,
                                   const data::Dataset& test_data);

}  // namespace dive::train

#endif  // TRAIN_TRAINING_H_
