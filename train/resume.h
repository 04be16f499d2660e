// File: train/resume.h
// -----------------------------------------------------------------------------
//
// `Resume`: continues a run from the checkpoint in its directory
// (train/checkpoint.h), for `TrainOptions::resume`. Everything is read and
// checked before anything changes, on disk or in memory: the model's name
// and input size, the settings the run must keep (train/options.h's
// `ResumeSettings`), the position against this run's data and batch size.
// Then the model and optimizer take the saved state, a save cut short after
// its commit is completed, and metrics.csv is trimmed to the checkpoint.
// Another number of processes is one warning line saying what that changes
// (the batch split and each rank's data order; train_state.h's
// RankCountChange), other threads or kernels another: the run goes on, no
// longer bit for bit.
//
// Example:
//
//   if (o.resume) {
//     absl::Status s = Resume(o.out_dir, spec, o, train.size(), state);
//     if (!s.ok()) return s;
//   }

#ifndef TRAIN_RESUME_H_
#define TRAIN_RESUME_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "models/spec.h"
#include "train/checkpoint.h"
#include "train/options.h"

namespace dive::train {

// Resumes `state` (its model, optimizer, settings and environment set for
// this run) from the checkpoint in `dir`, for a run of `spec` with options
// `o` over `examples` training examples. InvalidArgument or DataLoss naming
// the file and what does not fit; then nothing has changed.
absl::Status Resume(const std::string& dir, const models::ModelSpec& spec,
                    const TrainOptions& o, int64_t examples, TrainState& state);

}  // namespace dive::train

#endif  // TRAIN_RESUME_H_
