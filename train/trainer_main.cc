#include "train/trainer_main.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "datasets/fashion_mnist.h"
#include "distributed/mpi_process_group.h"
#include "glog/logging.h"
#include "tensor/cpu.h"
#include "tensor/file_io.h"
#include "tensor/random.h"
#include "train/cli.h"
#include "train/dashboard/dashboard.h"
#include "train/layer_profiler.h"
#include "train/options.h"
#include "train/stop.h"
#include "train/training.h"

// Unset (the default) means the book's recipe; any value given is checked,
// so --epochs=0 is an error rather than a silent switch to the recipe.
ABSL_FLAG(std::optional<int64_t>, epochs, std::nullopt,
          "Training epochs (default: the book's recipe).");
ABSL_FLAG(std::optional<double>, lr, std::nullopt,
          "Learning rate (default: the book's recipe).");
ABSL_FLAG(std::optional<int64_t>, batch_size, std::nullopt,
          "Minibatch size (default: the book's recipe).");
ABSL_FLAG(std::optional<int64_t>, resize, std::nullopt,
          "Input side in pixels; images are resized bilinearly "
          "(default: the book's recipe).");
ABSL_FLAG(int, threads, 0, "Compute threads (0: all cores).");
ABSL_FLAG(uint64_t, seed, 0, "Seed for initialization and shuffling.");
ABSL_FLAG(std::string, optimizer, "sgd", "sgd (the book's), adam or adamw.");
ABSL_FLAG(double, weight_decay, 0,
          "L2 penalty (sgd, adam); decoupled weight decay (adamw).");
ABSL_FLAG(double, momentum, 0, "SGD momentum.");
ABSL_FLAG(std::string, lr_schedule, "constant",
          "constant; step (times --lr_gamma every --lr_step_epochs epochs); "
          "cosine (half a cosine from --lr to 0 over --epochs).");
ABSL_FLAG(int64_t, lr_step_epochs, 0,
          "Epochs between decays of --lr_schedule=step.");
ABSL_FLAG(double, lr_gamma, 0.1, "Decay factor of --lr_schedule=step.");
ABSL_FLAG(double, warmup_epochs, 0,
          "Raise the rate linearly from 0 over the first N epochs (a "
          "fraction is allowed), step by step.");
ABSL_FLAG(std::string, augment, "none",
          "Training augmentation: none, flip (random horizontal flip), crop "
          "(random crop after zero padding by 4) or flip,crop.");
ABSL_FLAG(double, clip_grad_norm, 0,
          "Scale gradients down to this global L2 norm when larger (0: off).");
ABSL_FLAG(int64_t, checkpoint_every, 0,
          "Also checkpoint every N steps (0: at each epoch's end only). "
          "SIGINT or SIGTERM checkpoint at the current step and stop.");
ABSL_FLAG(int64_t, train_limit, 0, "Use only the first N training images.");
ABSL_FLAG(int64_t, test_limit, 0, "Use only the first N test images.");
ABSL_FLAG(std::string, data_dir, dive::data::kDefaultFashionMnistDir,
          "Directory with the Fashion-MNIST IDX files.");
ABSL_FLAG(std::string, out, "",
          "Directory for model.safetensors, metrics.csv and metrics.png.");
ABSL_FLAG(bool, resume, false,
          "Continue the run in --out exactly where it stopped.");
ABSL_FLAG(bool, overwrite, false,
          "Start afresh in an --out that already holds a run, replacing it.");
ABSL_FLAG(bool, skip_nonfinite, false,
          "Skip steps whose loss is NaN or Inf instead of stopping.");
ABSL_FLAG(bool, progress, true, "Show per-step progress.");
ABSL_FLAG(std::string, precision, "fp32",
          "fp32, or bf16: mixed precision (convolution and Linear multiply "
          "bf16 operands, everything else float32, as PyTorch's bf16 "
          "autocast).");
ABSL_FLAG(std::string, memory_format, "auto",
          "Under bf16, the layout of the activations between oneDNN's "
          "convolutions: channels_last, contiguous (NCHW), or auto: the "
          "model's measured choice.");
ABSL_FLAG(std::optional<int>, dashboard, std::nullopt,
          "Serve a live dashboard of the run on http://127.0.0.1:PORT/ "
          "(0: any free port, logged at the start; under mpirun, rank 0).");
ABSL_FLAG(bool, dashboard_keep, false,
          "With --dashboard: keep serving after training ends, until Ctrl-C.");
ABSL_FLAG(bool, profile, false,
          "Print a per-layer roofline at the end: forward and backward time, "
          "GFLOP/s, % of peak, bytes moved, FLOP/byte, compute or memory "
          "bound.");
ABSL_FLAG(double, collective_timeout, 300,
          "Under mpirun: seconds a collective may wait for the other ranks "
          "before the job is aborted as hung (<= 0: wait forever).");
ABSL_FLAG(double, ddp_bucket_mb, 25,
          "Under mpirun: MiB of float32 gradients per all-reduce (PyTorch's "
          "bucket_cap_mb).");
ABSL_FLAG(bool, ddp_overlap, true,
          "Under mpirun: start each gradient bucket's all-reduce during the "
          "backward pass, as soon as it is full.");
ABSL_FLAG(bool, ddp_bf16_compress, false,
          "Under mpirun: send gradients as bf16, half the bytes (PyTorch's "
          "bf16_compress_hook).");
ABSL_FLAG(bool, sync_batchnorm, false,
          "Under mpirun: BatchNorm layers normalize with the statistics of "
          "the whole global batch over all ranks (PyTorch's SyncBatchNorm).");
ABSL_FLAG(int64_t, hold_before_epoch, 0,
          "Test hook: once epoch N-1 is written and observed, log \"holding "
          "before epoch N\" and wait for SIGUSR1 (or SIGINT, SIGTERM) before "
          "training on, so that a test can look at a run that is surely "
          "live (0: off; not under mpirun).");

namespace dive::train {
namespace {

// The processes of this run, once created (TrainerMain).
distributed::ProcessGroup* running_group = nullptr;

int Fail(const absl::Status& status) {
  const bool several = running_group != nullptr && running_group->size() > 1;
  const std::string where =
      several ? absl::StrCat("rank ", running_group->rank(), ": ") : "";
  std::fprintf(stderr, "error: %s%s\n", where.c_str(),
               std::string(status.message()).c_str());
  // A rank that returned alone would leave the others waiting in their next
  // collective: end the whole job.
  if (several) running_group->Abort(1);
  return 1;
}

// The float training uses for the value of --`flag`, or InvalidArgument when
// float cannot hold it (1e-50 would become 0 and be reported as "--lr=0").
absl::StatusOr<float> ToFloat(absl::string_view flag, double value) {
  const float f = static_cast<float>(value);
  if ((value != 0 && f == 0) || (std::isfinite(value) && !std::isfinite(f))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, "=", value,
        ": outside the range of float, which training uses (magnitudes ",
        std::numeric_limits<float>::denorm_min(), " to ",
        std::numeric_limits<float>::max(), ")"));
  }
  return f;
}

// Set by SIGUSR1 once --hold_before_epoch installs its handler.
volatile std::sig_atomic_t hold_released = 0;

void ReleaseHold(int) { hold_released = 1; }

// --hold_before_epoch=N, a hook for tests such as
// //train/dashboard:dashboard_browser_test: after the other observers have
// seen epoch N - 1 (metrics.csv has its row, the dashboard plots it), logs
// "holding before epoch N" and waits until SIGUSR1 releases the run or
// SIGINT/SIGTERM asks it to stop. A SIGUSR1 that comes earlier releases the
// hold in advance. Nothing is read or written but the log.
class HoldObserver : public TrainObserver {
 public:
  explicit HoldObserver(int64_t epoch) : epoch_(epoch) {}

  absl::Status OnEpoch(const TrainState&, const EpochMetrics& m) override {
    if (m.epoch + 1 != epoch_) return absl::OkStatus();
    LOG(INFO) << "holding before epoch " << epoch_
              << " until SIGUSR1 (--hold_before_epoch)";
    while (hold_released == 0 && !StopRequested()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    LOG(INFO) << "hold before epoch " << epoch_ << " ended by "
              << (hold_released != 0 ? "SIGUSR1" : "a stop request");
    return absl::OkStatus();
  }

 private:
  const int64_t epoch_;
};

}  // namespace

int TrainerMain(int argc, char** argv,
                const std::function<models::ModelSpec()>& make_spec) {
  ReopenClosedStandardFds();
  absl::SetProgramUsageMessage(
      "Trains a model of the zoo on Fashion-MNIST with the book's recipe.");
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  // The recipe at the model's default flags describes the defaults of the
  // flags left to it.
  const models::Recipe recipe = make_spec().recipe;
  absl::StatusOr<bool> go_on = ParseFlags(
      argc, argv,
      {{"epochs", absl::StrCat(recipe.epochs, " (the recipe's)")},
       {"lr", absl::StrCat(recipe.lr, " (the recipe's)")},
       {"batch_size", absl::StrCat(recipe.batch_size, " (the recipe's)")},
       {"resize", absl::StrCat(recipe.input_size, " (the recipe's)")}});
  if (!go_on.ok()) return Fail(go_on.status());
  if (!*go_on) return 0;  // --help
  // Launched by mpirun: data-parallel training over the launched processes.
  absl::StatusOr<std::unique_ptr<distributed::ProcessGroup>> group =
      distributed::CreateProcessGroup(
          {absl::Seconds(absl::GetFlag(FLAGS_collective_timeout))});
  if (!group.ok()) return Fail(group.status());
  running_group = group->get();
  if ((*group)->rank() != 0) FLAGS_minloglevel = google::GLOG_WARNING;

  const models::ModelSpec spec = make_spec();
  TrainOptions o;
  const models::Recipe& r = spec.recipe;
  o.epochs = absl::GetFlag(FLAGS_epochs).value_or(r.epochs);
  absl::StatusOr<float> lr =
      ToFloat("lr", absl::GetFlag(FLAGS_lr).value_or(r.lr));
  if (!lr.ok()) return Fail(lr.status());
  o.lr = *lr;
  o.batch_size = absl::GetFlag(FLAGS_batch_size).value_or(r.batch_size);
  o.input_size = absl::GetFlag(FLAGS_resize).value_or(r.input_size);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.seed = absl::GetFlag(FLAGS_seed);
  absl::StatusOr<float> weight_decay =
      ToFloat("weight_decay", absl::GetFlag(FLAGS_weight_decay));
  if (!weight_decay.ok()) return Fail(weight_decay.status());
  o.weight_decay = *weight_decay;
  absl::StatusOr<float> momentum =
      ToFloat("momentum", absl::GetFlag(FLAGS_momentum));
  if (!momentum.ok()) return Fail(momentum.status());
  o.momentum = *momentum;
  absl::StatusOr<OptimizerKind> optimizer =
      ParseOptimizer(absl::GetFlag(FLAGS_optimizer));
  if (!optimizer.ok()) return Fail(optimizer.status());
  o.optimizer = *optimizer;
  absl::StatusOr<LrScheduleKind> schedule =
      ParseLrSchedule(absl::GetFlag(FLAGS_lr_schedule));
  if (!schedule.ok()) return Fail(schedule.status());
  o.lr_schedule = *schedule;
  o.lr_step_epochs = absl::GetFlag(FLAGS_lr_step_epochs);
  absl::StatusOr<float> gamma =
      ToFloat("lr_gamma", absl::GetFlag(FLAGS_lr_gamma));
  if (!gamma.ok()) return Fail(gamma.status());
  o.lr_gamma = *gamma;
  o.warmup_epochs = absl::GetFlag(FLAGS_warmup_epochs);
  if (absl::Status s = ParseAugment(absl::GetFlag(FLAGS_augment),
                                    &o.augment_flip, &o.augment_crop);
      !s.ok()) {
    return Fail(s);
  }
  absl::StatusOr<float> clip =
      ToFloat("clip_grad_norm", absl::GetFlag(FLAGS_clip_grad_norm));
  if (!clip.ok()) return Fail(clip.status());
  o.clip_grad_norm = *clip;
  o.checkpoint_every = absl::GetFlag(FLAGS_checkpoint_every);
  o.train_limit = absl::GetFlag(FLAGS_train_limit);
  o.test_limit = absl::GetFlag(FLAGS_test_limit);
  o.out_dir = absl::GetFlag(FLAGS_out);
  o.resume = absl::GetFlag(FLAGS_resume);
  o.overwrite = absl::GetFlag(FLAGS_overwrite);
  o.skip_nonfinite = absl::GetFlag(FLAGS_skip_nonfinite);
  o.progress = absl::GetFlag(FLAGS_progress);
  o.process_group = group->get();
  const double bucket_mb = absl::GetFlag(FLAGS_ddp_bucket_mb);
  if (!(bucket_mb > 0 && bucket_mb <= 1 << 20)) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--ddp_bucket_mb=", bucket_mb, ": must be in (0, 1048576]")));
  }
  o.data_parallel.bucket_bytes =
      std::max<size_t>(sizeof(float), static_cast<size_t>(bucket_mb * (1 << 20)));
  o.data_parallel.overlap = absl::GetFlag(FLAGS_ddp_overlap);
  o.data_parallel.bf16_compress = absl::GetFlag(FLAGS_ddp_bf16_compress);
  o.sync_batch_norm = absl::GetFlag(FLAGS_sync_batchnorm);
  absl::StatusOr<MatmulPrecision> precision =
      ParsePrecision(absl::GetFlag(FLAGS_precision));
  if (!precision.ok()) return Fail(precision.status());
  o.precision = *precision;
  absl::StatusOr<MemoryFormat> memory_format = ParseMemoryFormat(
      absl::GetFlag(FLAGS_memory_format), spec, /*training=*/true);
  if (!memory_format.ok()) return Fail(memory_format.status());
  o.memory_format = *memory_format;
  if (absl::StatusOr<Isa> isa = IsaFromEnvironment(); !isa.ok()) {
    return Fail(isa.status());
  }
  const std::optional<int> dashboard_port = absl::GetFlag(FLAGS_dashboard);
  if (dashboard_port.has_value() &&
      (*dashboard_port < 0 || *dashboard_port > 65535)) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--dashboard=", *dashboard_port,
                     ": must be a port in 0..65535 (0: any free one)")));
  }
  if (absl::GetFlag(FLAGS_dashboard_keep) && !dashboard_port.has_value()) {
    return Fail(
        absl::InvalidArgumentError("--dashboard_keep: needs --dashboard=PORT"));
  }
  const int64_t hold_before_epoch = absl::GetFlag(FLAGS_hold_before_epoch);
  if (hold_before_epoch != 0 &&
      (hold_before_epoch < 2 || hold_before_epoch > o.epochs)) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--hold_before_epoch=", hold_before_epoch,
        ": must be 0 (off) or an epoch from 2 to --epochs=", o.epochs)));
  }
  if (hold_before_epoch != 0 && (*group)->size() > 1) {
    // Only rank 0 observes: the others would wait in a collective and time
    // out.
    return Fail(absl::InvalidArgumentError(
        "--hold_before_epoch: not under mpirun (it would hold rank 0 alone)"));
  }
  // Built once, before the data loads, so an unsupported --resize fails
  // first.
  ManualSeed(o.seed);
  absl::StatusOr<std::shared_ptr<nn::Module>> model = spec.make(o.input_size);
  if (!model.ok()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--resize=", o.input_size, ": ", model.status().message())));
  }

  const std::string dir = absl::GetFlag(FLAGS_data_dir);
  if (absl::Status s = CheckPathFlag("data_dir", dir); !s.ok()) return Fail(s);
  absl::StatusOr<data::InMemoryDataset> train =
      data::LoadFashionMnist(dir, data::Split::kTrain);
  if (!train.ok()) return Fail(train.status());
  absl::StatusOr<data::InMemoryDataset> test =
      data::LoadFashionMnist(dir, data::Split::kTest);
  if (!test.ok()) return Fail(test.status());

  LOG(INFO) << "cpu: " << CpuDescription();
  LOG(INFO) << spec.description << ": " << o.epochs << " epochs, lr " << o.lr
            << ", batch " << o.batch_size << ", input " << o.input_size << "x"
            << o.input_size << ", threads "
            << (o.threads == 0 ? std::string("all") : absl::StrCat(o.threads))
            << (o.precision == MatmulPrecision::kBfloat16
                    ? (o.memory_format == MemoryFormat::kChannelsLast
                           ? ", bf16 (channels-last)"
                           : ", bf16")
                    : "")
            << ", " << OptimizerName(o.optimizer) << ", lr schedule "
            << LrScheduleName(o.lr_schedule) << ", augment "
            << AugmentName(o.augment_flip, o.augment_crop)
            << ((*group)->size() == 1
                    ? std::string()
                    : absl::StrCat(", data-parallel over ", (*group)->size(),
                                   " processes of ",
                                   o.batch_size / (*group)->size(),
                                   " examples per batch"));
  // The profiler and the dashboard observe rank 0, which sees every step.
  const bool root = (*group)->rank() == 0;
  std::unique_ptr<LayerProfiler> profiler;
  if (root && (dashboard_port.has_value() || absl::GetFlag(FLAGS_profile))) {
    // Activation statistics (a pass over each output) on every 10th step.
    profiler = std::make_unique<LayerProfiler>(
        **model, dashboard_port.has_value() ? 10 : 0);
    o.observers.push_back(profiler.get());
  }
  std::unique_ptr<Dashboard> dashboard;
  if (root && dashboard_port.has_value()) {
    absl::StatusOr<std::unique_ptr<Dashboard>> started = Dashboard::Start(
        {.port = *dashboard_port,
         .title = spec.description,
         .epochs = o.epochs,
         .class_names = {data::FashionMnistClassNames().begin(),
                         data::FashionMnistClassNames().end()}},
        profiler.get());
    if (!started.ok()) {
      return Fail(absl::Status(started.status().code(),
                               absl::StrCat("--dashboard=", *dashboard_port,
                                            ": ", started.status().message())));
    }
    dashboard = *std::move(started);
    o.observers.push_back(dashboard.get());
    LOG(INFO) << "dashboard: " << dashboard->url();
  }
  std::unique_ptr<HoldObserver> hold;
  if (hold_before_epoch != 0) {
    // Before training: a release sent once the hold is logged finds the
    // handler, never SIGUSR1's default action (the end of the process).
    std::signal(SIGUSR1, ReleaseHold);
    hold = std::make_unique<HoldObserver>(hold_before_epoch);
    o.observers.push_back(hold.get());
  }
  InstallStopHandlers();
  absl::StatusOr<TrainSummary> summary = Train(spec, **model, o, *train, *test);
  if (profiler != nullptr && absl::GetFlag(FLAGS_profile)) {
    std::fputs(profiler->Table().c_str(), stdout);
  }
  if (dashboard != nullptr) {
    dashboard->SetState(
        summary.ok() ? "finished"
        : absl::IsCancelled(summary.status())
            ? "stopped"
            : absl::StrCat("failed: ", summary.status().message()));
    if (absl::GetFlag(FLAGS_dashboard_keep) && summary.ok()) {
      LOG(INFO) << "dashboard: training ended; serving " << dashboard->url()
                << " until Ctrl-C";
      while (!StopRequested()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
  if (absl::IsCancelled(summary.status())) {  // SIGINT or SIGTERM
    LOG(WARNING) << summary.status().message();
    return 128 + StoppedBySignal();
  }
  if (!summary.ok()) return Fail(summary.status());
  if (!o.out_dir.empty() && !summary->epochs.empty()) {
    LOG(INFO) << "wrote " << o.out_dir
              << "/{model.safetensors,train_state.safetensors,metrics.csv,"
                 "metrics.png}";
  }
  return 0;
}

}  // namespace dive::train
