#include "train/components.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "nn/batch_norm.h"
#include "optim/adam.h"
#include "optim/sgd.h"

namespace dive::train {
namespace {

// True when `module` or any submodule is a BatchNorm layer.
bool HasBatchNorm(const nn::Module& module) {
  for (const auto& [name, m] : module.NamedModules()) {
    if (dynamic_cast<const nn::BatchNormBase*>(m) != nullptr) return true;
  }
  return false;
}

// Training BatchNorm normalizes by the batch's statistics, which one example
// does not have: never hand it a batch of 1.
absl::Status AvoidBatchesOfOne(const models::ModelSpec& spec,
                               int64_t examples, int64_t global_batch,
                               int ranks, bool root,
                               data::DataLoaderOptions& lo) {
  if (lo.batch_size == 1 || examples == 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        examples == 1
            ? "the training set has 1 example"
            : absl::StrCat(
                  "--batch_size=", global_batch,
                  ranks > 1 ? absl::StrCat(" over ", ranks, " processes") : "",
                  " gives batches of 1 example"),
        ": ", spec.name,
        " has BatchNorm, which needs at least 2 examples per batch to train"));
  }
  if (!lo.sampler.drop_last && examples % lo.batch_size == 1) {
    lo.sampler.drop_last = true;
    LOG_IF(INFO, root) << "each epoch drops its last batch (1 example of "
                       << examples << "): " << spec.name
                       << " has BatchNorm, which cannot train on 1 example";
  }
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<optim::Optimizer> MakeOptimizer(
    const TrainOptions& o, std::vector<autograd::Variable> params) {
  switch (o.optimizer) {
    case OptimizerKind::kAdam: {
      optim::AdamOptions a;
      a.lr = o.lr;
      a.weight_decay = o.weight_decay;
      return std::make_unique<optim::Adam>(std::move(params), a);
    }
    case OptimizerKind::kAdamW: {
      optim::AdamWOptions a;
      a.lr = o.lr;
      a.weight_decay = o.weight_decay;
      return std::make_unique<optim::AdamW>(std::move(params), a);
    }
    case OptimizerKind::kSgd:
      break;
  }
  optim::SGDOptions so;
  so.lr = o.lr;
  so.momentum = o.momentum;
  so.weight_decay = o.weight_decay;
  return std::make_unique<optim::SGD>(std::move(params), so);
}

std::unique_ptr<optim::LrSchedule> MakeSchedule(const TrainOptions& o,
                                                int64_t steps_per_epoch) {
  std::unique_ptr<optim::LrSchedule> per_epoch;
  switch (o.lr_schedule) {
    case LrScheduleKind::kStep:
      per_epoch = std::make_unique<optim::StepLR>(o.lr_step_epochs, o.lr_gamma);
      break;
    case LrScheduleKind::kCosine:
      per_epoch = std::make_unique<optim::CosineAnnealingLR>(o.epochs);
      break;
    case LrScheduleKind::kConstant:
      per_epoch = std::make_unique<optim::ConstantLR>();
      break;
  }
  // A fraction of an epoch is allowed: warm-up covers the steps it starts.
  const auto warmup_steps = static_cast<int64_t>(
      std::ceil(o.warmup_epochs * static_cast<double>(steps_per_epoch)));
  if (warmup_steps == 0) return per_epoch;
  return std::make_unique<optim::LinearWarmup>(std::move(per_epoch),
                                               warmup_steps);
}

absl::StatusOr<data::DataLoader> MakeTrainLoader(
    const models::ModelSpec& spec, const nn::Module& model,
    const TrainOptions& o, std::shared_ptr<const data::Dataset> data,
    const distributed::ProcessGroup& group) {
  const int ranks = group.size();
  data::DataLoaderOptions lo;
  // --batch_size is the global batch: each rank takes 1/size of every batch
  // (shard k: positions k, k + size, ... of the epoch's order) and the
  // gradients are averaged, so a run on any number of ranks follows the
  // single-process run up to float rounding (but BatchNorm's batch
  // statistics are per rank). Several ranks drop the epoch's last partial
  // batch, so that all take the same number of steps.
  lo.batch_size = o.batch_size / ranks;
  lo.sampler.num_shards = ranks;
  lo.sampler.shard_index = group.rank();
  lo.sampler.drop_last = ranks > 1;
  lo.sampler.shuffle = true;
  lo.sampler.seed = o.seed;
  // Always set: the loader resizes only images of another height or width.
  lo.transforms.resize = o.input_size;
  lo.transforms.random_horizontal_flip = o.augment_flip;
  lo.transforms.random_crop = o.augment_crop;
  lo.transforms.crop_padding = 4;
  // The loader prepares batches on its own thread while the model computes
  // on all cores; one thread for its transforms avoids oversubscription.
  lo.num_threads = 1;
  if (HasBatchNorm(model)) {
    if (absl::Status s = AvoidBatchesOfOne(spec, data->size(), o.batch_size,
                                           ranks, group.rank() == 0, lo);
        !s.ok()) {
      return s;
    }
  }
  return data::DataLoader::Create(std::move(data), lo);
}

}  // namespace dive::train
