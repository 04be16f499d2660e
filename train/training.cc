#include "train/training.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "autograd/variable.h"
#include "datasets/data_loader.h"
#include "distributed/data_parallel.h"
#include "distributed/process_group.h"
#include "distributed/sync_batch_norm.h"
#include "glog/logging.h"
#include "nn/bf16_activations.h"
#include "optim/clip_grad.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "tensor/conv.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "train/checkpoint.h"
#include "train/checkpoint_observer.h"
#include "train/components.h"
#include "train/evaluation.h"
#include "train/metrics_log.h"
#include "train/progress.h"
#include "train/replicas.h"
#include "train/resume.h"
#include "train/run_dir.h"
#include "train/stop.h"

namespace dive::train {
namespace {

using Clock = std::chrono::steady_clock;

// Salt of the dropout stream (reseeded before each step).
constexpr uint64_t kDropoutSalt = 0x44524f504f5554ULL;  // "DROPOUT"

// InvalidArgument unless both datasets hold single-channel images.
absl::Status CheckImages(const data::Dataset& train,
                         const data::Dataset& test) {
  for (const data::Dataset* data : {&train, &test}) {
    const Shape shape = data->ImageShape();
    if (shape.rank() == 3 && shape[0] != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the models take 1-channel images; the ",
          data == &train ? "training" : "test", " data has ", shape[0],
          " channels"));
    }
  }
  return absl::OkStatus();
}

// One call of `Train`: what it built, where it is, what observes it.
struct Run {
  const models::ModelSpec& spec;
  nn::Module& model;
  const TrainOptions& o;
  distributed::ProcessGroup& group;
  std::optional<data::DataLoader> loader;
  std::unique_ptr<optim::Optimizer> optimizer;
  std::unique_ptr<optim::LrSchedule> schedule;
  std::unique_ptr<distributed::DistributedDataParallel> ddp;
  std::optional<distributed::SyncBatchNormLayers> sync_batch_norm;
  TrainState state;
  std::unique_ptr<RunDir> dir;  // rank 0 with out_dir: locked for the run
  std::optional<ProgressObserver> progress;
  std::optional<MetricsObserver> metrics;
  std::optional<CheckpointObserver> checkpoints;
  std::vector<TrainObserver*> observers;  // rank 0's, in order

  bool root() const { return group.rank() == 0; }

  // Calls `call(observer)` on each observer until one fails.
  template <typename Call>
  absl::Status Notify(Call call) {
    for (TrainObserver* observer : observers) {
      if (absl::Status s = call(*observer); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  std::string LastGood() const {
    return absl::StrCat("last good checkpoint: ",
                        checkpoints ? checkpoints->LastGood() : "none");
  }
};

// Accepts the run in `run.o.out_dir` (rank 0): claims the directory, refuses
// one that holds a run unless resuming or overwriting, resumes, and clears
// what a killed run left. Nothing in it changes before the run is accepted.
absl::Status OpenRunDir(Run& run, int64_t examples) {
  const TrainOptions& o = run.o;
  absl::StatusOr<std::unique_ptr<RunDir>> dir = RunDir::Claim(o.out_dir);
  if (!dir.ok()) return dir.status();
  run.dir = *std::move(dir);
  if (!o.resume && !o.overwrite) {
    if (absl::Status s = run.dir->RefuseAnExistingRun(); !s.ok()) return s;
  }
  if (o.resume) {
    if (absl::Status s = Resume(o.out_dir, run.spec, o, examples, run.state);
        !s.ok()) {
      return s;
    }
  }
  run.dir->RemoveLeftovers();
  return absl::OkStatus();
}

// Everything `Train` needs before its first step, on every rank.
absl::Status Start(Run& run, const data::Dataset& train_data) {
  const TrainOptions& o = run.o;
  std::shared_ptr<const data::Dataset> train =
      data::Head(data::Unowned(train_data), o.train_limit);
  const int64_t n = train->size();
  absl::StatusOr<data::DataLoader> loader =
      MakeTrainLoader(run.spec, run.model, o, std::move(train), run.group);
  if (!loader.ok()) return loader.status();
  run.loader.emplace(*std::move(loader));
  const int64_t steps_per_epoch = run.loader->num_batches();
  // ReLUs in the passes of the layers before them (the same numbers, bit for
  // bit), and in evaluation BatchNorm folded into convolutions.
  run.model.Fuse();
  run.optimizer = MakeOptimizer(o, run.model.Parameters());
  run.schedule = MakeSchedule(o, steps_per_epoch);
  run.state.model = &run.model;
  run.state.optimizer = run.optimizer.get();
  run.state.settings = ResumeSettings(o);
  run.state.environment = {steps_per_epoch, run.group.size(), GetNumThreads(),
                           std::string(IsaName(ActiveIsa()))};
  if (run.root() && !o.out_dir.empty()) {
    if (absl::Status s = OpenRunDir(run, n); !s.ok()) return s;
  }
  if (o.sync_batch_norm) {
    run.sync_batch_norm.emplace(
        distributed::ConvertSyncBatchNorm(run.model, run.group));
    LOG_IF(INFO, run.root() && run.group.size() > 1)
        << "SyncBatchNorm: " << run.sync_batch_norm->count()
        << " BatchNorm layers normalize over all " << run.group.size()
        << " processes";
  }
  run.ddp = std::make_unique<distributed::DistributedDataParallel>(
      run.group, run.model.Parameters(), o.data_parallel);
  if (absl::Status s = SyncReplicas(run.group, *run.ddp, run.state); !s.ok()) {
    return s;
  }
  if (!run.root()) return absl::OkStatus();
  run.progress.emplace(o.progress, o.log_every);
  run.observers.push_back(&*run.progress);
  if (run.dir != nullptr) {
    run.metrics.emplace(o.out_dir, run.spec.description, /*fresh=*/!o.resume);
    run.checkpoints.emplace(o.out_dir, run.spec.name, o.input_size,
                            o.checkpoint_every, run.state.position);
    run.observers.push_back(&*run.metrics);
    run.observers.push_back(&*run.checkpoints);
  }
  run.observers.insert(run.observers.end(), o.observers.begin(),
                       o.observers.end());
  return absl::OkStatus();
}

// One optimizer step on `batch` (this rank's share of the global batch):
// what the observers are told of it; `*stop` when the run was asked to stop.
absl::StatusOr<StepInfo> Step(Run& run, const data::Batch& batch, bool* stop) {
  const TrainOptions& o = run.o;
  TrainPosition& at = run.state.position;
  EpochTotals& totals = run.state.totals;
  const int64_t epoch = at.epoch, step = at.global_step;
  const double lr = run.schedule->LrAt(run.optimizer->lr(), epoch, step);
  DefaultGenerator().Seed(
      CombineSeeds({kDropoutSalt, o.seed, static_cast<uint64_t>(run.group.rank()),
                    static_cast<uint64_t>(step)}));
  ++at.step;
  ++at.global_step;
  autograd::Variable logits = run.model(autograd::Variable(batch.images));
  if (logits.shape().rank() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(run.spec.name, " outputs ", logits.shape().ToString(),
                     " per batch, not [batch, classes]"));
  }
  absl::StatusOr<int64_t> correct = CountPredictions(logits.data(), batch);
  if (!correct.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the training data does not fit ", run.spec.name, ": training ",
        correct.status().message()));
  }
  autograd::Variable loss = SoftmaxCrossEntropy(logits, batch.labels);
  // One collective per step: the loss and the correct predictions over the
  // global batch, and whether any rank is asked to stop (so every rank takes
  // the same branches).
  double reduced[3] = {loss.data().item(), StopRequested() ? 1.0 : 0.0,
                       static_cast<double>(*correct)};
  if (absl::Status s = run.group.AllReduceSum(reduced, 3); !s.ok()) return s;
  const double l = reduced[0] / run.group.size();
  *stop = reduced[1] > 0;
  const int64_t global_batch = batch.labels.numel() * run.group.size();
  if (!std::isfinite(l)) {
    if (!o.skip_nonfinite) {
      return absl::AbortedError(absl::StrCat(
          "training diverged: loss is ", l, " at epoch ", epoch + 1, " step ",
          at.step, "; ", run.LastGood(),
          ". Lower --lr, or pass --skip_nonfinite to skip such steps"));
    }
    ++run.state.skipped_steps;
    LOG_IF(WARNING, run.root())
        << "epoch " << epoch + 1 << " step " << at.step << ": loss is " << l
        << ", step skipped (--skip_nonfinite)";
  } else {
    run.optimizer->ZeroGrad();
    loss.Backward();
    for (TrainObserver* observer : run.observers) {
      observer->OnAfterBackward(run.state);
    }
    if (absl::Status s = run.ddp->AllReduceGradients(); !s.ok()) return s;
    if (run.sync_batch_norm) {
      if (absl::Status s = run.sync_batch_norm->TakeError(); !s.ok()) {
        return s;
      }
    }
    if (o.clip_grad_norm > 0) {
      optim::ClipGradNorm(run.model.Parameters(), o.clip_grad_norm);
    }
    run.optimizer->Step(*run.schedule, epoch, step);
    totals.loss_sum += l * global_batch;  // every rank's batch is the same size
    totals.correct += static_cast<int64_t>(reduced[2]);
    totals.seen += global_batch;
  }
  return StepInfo{run.loader->num_batches(), global_batch, l,
                  reduced[2] / global_batch, static_cast<float>(lr)};
}

// The epoch's metrics (the test set evaluated across the ranks), then the
// observers.
absl::StatusOr<EpochMetrics> EndEpoch(Run& run, const data::Dataset& test) {
  const TrainState& state = run.state;
  const EpochTotals& totals = state.totals;
  const int64_t epoch = state.position.epoch + 1;
  if (state.position.step > 0 && totals.seen == 0) {
    return absl::AbortedError(absl::StrCat(
        "training diverged: every step of epoch ", epoch, " (",
        state.position.step, " of ", state.position.step,
        ") had a non-finite loss and was skipped (--skip_nonfinite), so "
        "nothing was trained; ",
        run.LastGood(), ". Lower --lr"));
  }
  EpochMetrics m;
  m.epoch = epoch;
  m.seconds = totals.seconds;
  const double seen = std::max<double>(totals.seen, 1);
  m.loss = totals.loss_sum / seen;
  m.train_acc = static_cast<double>(totals.correct) / seen;
  m.examples_per_sec = totals.seen / std::max(m.seconds, 1e-9);
  absl::StatusOr<EvalResult> tested = EvaluateAcrossRanks(
      run.group, run.model, test, run.o.input_size,
      run.o.batch_size / run.group.size(), run.o.test_limit);
  if (!tested.ok()) return tested.status();
  m.test_acc = tested->accuracy;
  m.confusion = std::move(tested->confusion);
  if (absl::Status s = run.Notify(
          [&](TrainObserver& ob) { return ob.OnEpoch(state, m); });
      !s.ok()) {
    return s;
  }
  return m;
}

// Cancelled, after the observers saw the stop (the checkpoint is saved).
absl::Status Stopped(Run& run) {
  const int signal = HonourStop();
  if (absl::Status s =
          run.Notify([&](TrainObserver& ob) { return ob.OnStop(run.state); });
      !s.ok()) {
    return s;
  }
  const TrainPosition& at = run.state.position;
  return absl::CancelledError(absl::StrCat(
      "stopped by ", strsignal(signal), " at epoch ", at.epoch + 1, " step ",
      at.step, " of ", run.loader->num_batches(),
      run.dir != nullptr ? absl::StrCat("; the run is saved in ", run.o.out_dir,
                                        ": continue it with --resume")
                         : std::string("; nothing was saved (no --out)")));
}

}  // namespace

absl::StatusOr<TrainSummary> Train(const models::ModelSpec& spec,
                                   const TrainOptions& options,
                                   const data::Dataset& train_data,
                                   const data::Dataset& test_data) {
  ManualSeed(options.seed);
  absl::StatusOr<std::shared_ptr<nn::Module>> made =
      spec.make(options.input_size);
  if (!made.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--resize=", options.input_size, ": ", made.status().message()));
  }
  return Train(spec, **made, options, train_data, test_data);
}

absl::StatusOr<TrainSummary> Train(const models::ModelSpec& spec,
                                   nn::Module& model, const TrainOptions& o,
                                   const data::Dataset& train_data,
                                   const data::Dataset& test_data) {
  if (absl::Status s = ValidateOptions(o); !s.ok()) return s;
  if (absl::Status s = CheckImages(train_data, test_data); !s.ok()) return s;
  SetNumThreads(CapThreads(o.threads));
  const ScopedMatmulPrecision precision(o.precision);
  const ScopedConvMemoryFormat memory_format(o.memory_format);
  // In bf16, activations stored as PyTorch's autocast stores them
  // (nn/bf16_activations.h).
  const nn::ScopedBf16Activations stored(
      o.precision == MatmulPrecision::kBfloat16
          ? nn::Bf16Activations::kAutocast
          : nn::Bf16Activations::kWhereExact);
  // Data parallelism: this process is rank `group.rank()` of `group.size()`;
  // rank 0 alone prints progress and writes files.
  distributed::LocalProcessGroup single_process;
  Run run{spec, model, o,
          o.process_group != nullptr ? *o.process_group : single_process};
  if (absl::Status s = Start(run, train_data); !s.ok()) return s;

  TrainSummary summary;
  TrainPosition& at = run.state.position;
  while (at.epoch < o.epochs) {
    model.Train();
    run.loader->StartEpoch(at.epoch, at.step);
    const Clock::time_point start = Clock::now();
    const double seconds_before = run.state.totals.seconds;
    data::Batch batch;
    while (run.loader->Next(&batch)) {
      bool stop = false;
      absl::StatusOr<StepInfo> step = Step(run, batch, &stop);
      if (!step.ok()) return step.status();
      run.state.totals.seconds =
          seconds_before +
          std::chrono::duration<double>(Clock::now() - start).count();
      if (absl::Status s = run.Notify([&](TrainObserver& ob) {
            return ob.OnStep(run.state, *step);
          });
          !s.ok()) {
        return s;
      }
      if (stop) return Stopped(run);
    }
    absl::StatusOr<EpochMetrics> m = EndEpoch(run, test_data);
    if (!m.ok()) return m.status();
    summary.epochs.push_back(*std::move(m));
    at = {at.epoch + 1, 0, at.global_step};
    run.state.totals = {};
  }
  summary.skipped_steps = run.state.skipped_steps;
  return summary;
}

}  // namespace dive::train
