// File: train/components.h
// -----------------------------------------------------------------------------
//
// What `Train` builds from its options: the optimizer, the learning-rate
// schedule and the training data loader of this rank.
//
// Example:
//
//   std::unique_ptr<optim::Optimizer> opt = MakeOptimizer(o, model.Parameters());
//   std::unique_ptr<optim::LrSchedule> lr = MakeSchedule(o, steps_per_epoch);
//   opt->Step(*lr, epoch, global_step);

#ifndef TRAIN_COMPONENTS_H_
#define TRAIN_COMPONENTS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "autograd/variable.h"
#include "datasets/data_loader.h"
#include "datasets/dataset.h"
#include "distributed/process_group.h"
#include "models/spec.h"
#include "nn/module.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "train/options.h"

namespace dive::train {

// SGD (with `momentum`), Adam or AdamW over `params`, one group at `o.lr`
// with `o.weight_decay`.
std::unique_ptr<optim::Optimizer> MakeOptimizer(
    const TrainOptions& o, std::vector<autograd::Variable> params);

// The schedule of `o` (constant, step or cosine over `o.epochs`), with
// `o.warmup_epochs` of linear warm-up counted in steps of an epoch of
// `steps_per_epoch` steps.
std::unique_ptr<optim::LrSchedule> MakeSchedule(const TrainOptions& o,
                                                int64_t steps_per_epoch);

// The loader of rank `group.rank()` over `data`: each rank takes 1/size of
// every global batch of `o.batch_size`, shuffled by `o.seed`, resized to
// `o.input_size` and augmented as `o` asks. For a model with BatchNorm
// (which cannot train on one example), InvalidArgument when batches would
// hold one example, and a last batch of one is dropped.
absl::StatusOr<data::DataLoader> MakeTrainLoader(
    const models::ModelSpec& spec, const nn::Module& model,
    const TrainOptions& o, std::shared_ptr<const data::Dataset> data,
    const distributed::ProcessGroup& group);

}  // namespace dive::train

#endif  // TRAIN_COMPONENTS_H_
