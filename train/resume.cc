#include "train/resume.h"

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "tensor/text.h"
#include "train/metrics_log.h"

namespace dive::train {
namespace {

// OK when the run saved as `saved` in `dir` can go on as a run of `state`
// (its settings and environment) with options `o` over `examples` training
// examples.
absl::Status CheckResumable(const SavedTrainState& saved,
                            const std::string& dir, const TrainOptions& o,
                            int64_t examples, const TrainState& state) {
  if (absl::Status s = CheckSettings(saved.settings, state.settings, dir);
      !s.ok()) {
    return s;
  }
  return CheckGeometry(saved, examples, o.batch_size,
                       absl::StrCat(dir, "/", kTrainStateFile));
}

// Fits the position restored from `saved` into `state`'s run (options `o`)
// and says how that run differs from the one it continues: another number
// of processes (another batch split and data order per rank), not bit for
// bit (other processes, threads or kernels), and, with fewer batches per
// epoch than the checkpoint's (more processes, which drop the last partial
// batch), maybe an epoch whose batches are all taken already: it is then at
// its last step, and ends without another batch.
void FitToThisRun(const SavedTrainState& saved, const TrainOptions& o,
                  TrainState& state) {
  const RunEnvironment& now = state.environment;
  const std::string ranks =
      RankCountChange(saved.environment, now, o.batch_size, o.sync_batch_norm);
  LOG_IF(WARNING, !ranks.empty()) << ranks;
  const std::string inexact = ExactnessWarning(saved.environment, now);
  LOG_IF(WARNING, !inexact.empty()) << inexact;
  TrainPosition& p = state.position;
  if (p.step <= now.steps_per_epoch) return;
  LOG(WARNING) << "epoch " << p.epoch + 1 << " already took " << p.step
               << " batches, more than the " << now.steps_per_epoch
               << " it has over " << now.processes << " process"
               << (now.processes == 1 ? "" : "es")
               << ": it ends there, and training goes on with epoch "
               << p.epoch + 2;
  p.step = now.steps_per_epoch;
}

}  // namespace

absl::Status Resume(const std::string& dir, const models::ModelSpec& spec,
                    const TrainOptions& o, int64_t examples,
                    TrainState& state) {
  absl::StatusOr<SavedRun> run = ReadRun(dir);
  if (!run.ok()) return run.status();
  const std::string weights =
      absl::StrCat(dir, "/", run->pending ? kPendingWeightsFile : kWeightsFile);
  const Checkpoint& c = run->weights;
  if (!c.model.empty() && c.model != spec.name) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", weights, " is of model '",
                     Printable(c.model), "', not ", spec.name));
  }
  if (c.input_size != 0 && c.input_size != o.input_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("--resize=", o.input_size, ": checkpoint ", weights,
                     " was trained at input size ", c.input_size,
                     "; resume with --resize=", c.input_size));
  }
  if (run->state) {
    if (absl::Status s = CheckResumable(*run->state, dir, o, examples, state);
        !s.ok()) {
      return s;
    }
  }
  // Checked into copies first: LoadStateDict leaves the model unchanged on
  // error, RestoreTrainState the optimizer.
  if (absl::Status s = state.model->LoadStateDict(c.file.tensors); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint ", weights, " does not fit the model: ", s.message()));
  }
  if (run->state) {
    if (absl::Status s = RestoreTrainState(*run->state, state); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir, "/", kTrainStateFile, ": ", s.message()));
    }
    FitToThisRun(*run->state, o, state);
  } else {
    state.position = {c.epoch, 0, 0};
    LOG(WARNING) << dir << " has no " << kTrainStateFile
                 << " (written before dive saved it, or converted from "
                    "PyTorch): resuming the weights of epoch "
                 << c.epoch
                 << " with a fresh optimizer state, so the run will not be "
                    "the one it continues";
  }
  if (run->pending) {
    if (absl::Status s = PublishPendingWeights(dir); !s.ok()) return s;
  }
  const TrainPosition& p = state.position;
  if (p.epoch >= o.epochs) {
    LOG(WARNING) << dir << "/" << kWeightsFile << " already holds epoch "
                 << p.epoch << " and --epochs=" << o.epochs
                 << ": nothing to train; pass a larger --epochs to go on";
  } else {
    LOG(INFO) << "resuming " << spec.name << " from " << dir << " at epoch "
              << p.epoch + 1 << " step " << p.step;
  }
  return TrimMetricsCsv(absl::StrCat(dir, "/metrics.csv"), p.epoch);
}

}  // namespace dive::train
