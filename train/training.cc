#include "train/training.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "autograd/functions.h"
#include "datasets/data_loader.h"
#include "distributed/data_parallel.h"
#include "distributed/process_group.h"
#include "glog/logging.h"
#include "nn/batch_norm.h"
#include "optim/adam.h"
#include "optim/clip_grad.h"
#include "optim/lr_schedule.h"
#include "optim/sgd.h"
#include "tensor/cpu.h"
#include "tensor/file_io.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"
#include "tensor/text.h"
#include "train/cli.h"
#include "train/plot.h"

namespace dive::train {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// The first n examples (all when n is 0 or larger than the data).
data::InMemoryDataset Head(const data::InMemoryDataset& data, int64_t n) {
  if (n <= 0 || n >= data.size()) return data;
  const uint8_t* first = data.image_bytes(0);
  std::vector<uint8_t> images(first, first + n * data.image_size());
  std::vector<int64_t> labels(data.labels().begin(), data.labels().begin() + n);
  return data::InMemoryDataset(std::move(images), std::move(labels),
                               data.channels(), data.height(), data.width());
}

int64_t CountCorrect(const Tensor& logits, const Tensor& labels) {
  const Tensor pred = ops::Argmax(logits, 1);
  const int64_t* p = pred.data<int64_t>();
  const int64_t* l = labels.data<int64_t>();
  int64_t correct = 0;
  for (int64_t i = 0; i < labels.numel(); ++i) correct += p[i] == l[i];
  return correct;
}

// ---- Observers --------------------------------------------------------------

// A line that redraws itself after each step on a terminal (else a log line
// every `log_every` steps), and the book's line after each epoch.
class ProgressObserver : public TrainObserver {
 public:
  ProgressObserver(bool show_steps, int64_t log_every)
      : tty_(show_steps && isatty(STDERR_FILENO)),
        show_steps_(show_steps),
        log_every_(log_every) {}

  absl::Status OnStep(const TrainState& state, const StepInfo& info) override {
    if (!show_steps_) return absl::OkStatus();
    const int64_t step = state.position.step, total = info.steps_per_epoch;
    const double seconds = state.totals.seconds;
    const double rate = state.totals.seen / std::max(seconds, 1e-9);
    const double loss =
        state.totals.loss_sum / std::max<int64_t>(state.totals.seen, 1);
    if (tty_) {
      constexpr int kWidth = 30;
      const int filled =
          static_cast<int>(kWidth * step / std::max<int64_t>(total, 1));
      const double eta = (total - step) * seconds / std::max<int64_t>(step, 1);
      std::fprintf(stderr,
                   "\r  [%s%s] %ld/%ld  loss %.4f  lr %.3g  %.0f ex/s  ETA "
                   "%.0fs ",
                   std::string(filled, '#').c_str(),
                   std::string(kWidth - filled, '.').c_str(), step, total, loss,
                   info.lr, rate, eta);
      std::fflush(stderr);
    } else if (step % log_every_ == 0 || step == total) {
      LOG(INFO) << absl::StrFormat(
          "step %d/%d  loss %.4f  lr %.3g  %.0f examples/s", step, total, loss,
          info.lr, rate);
    }
    return absl::OkStatus();
  }

  absl::Status OnEpoch(const TrainState&, const EpochMetrics& m) override {
    ClearLine();
    std::printf(
        "epoch %ld: loss %.3f, train acc %.3f, test acc %.3f, %.1f "
        "examples/sec\n",
        m.epoch, m.loss, m.train_acc, m.test_acc, m.examples_per_sec);
    std::fflush(stdout);
    return absl::OkStatus();
  }

  // Also when training stops early, with an error or a stop request.
  ~ProgressObserver() override { ClearLine(); }

 private:
  void ClearLine() {
    if (tty_) std::fprintf(stderr, "\r%*s\r", 100, "");
  }

  const bool tty_, show_steps_;
  const int64_t log_every_;
};

constexpr char kCsvHeader[] =
    "epoch,loss,train_acc,test_acc,seconds,examples_per_sec\n";

// metrics.csv is small; anything larger is not ours.
constexpr uint64_t kMaxCsvBytes = uint64_t{64} << 20;

// The text of the metrics CSV at `path` (never through a symlink), or ""
// when there is none.
absl::StatusOr<std::string> ReadCsv(const std::string& path) {
  absl::StatusOr<std::string> text =
      ReadRegularFile(path, "metrics", kMaxCsvBytes, /*follow_symlink=*/false);
  if (absl::IsNotFound(text.status())) return std::string();
  return text;
}

// Adds the row of `m` to the CSV at `path` (a new file with its header when
// `fresh`), replacing the file atomically; returns the new text.
absl::StatusOr<std::string> AppendCsv(const std::string& path,
                                      const EpochMetrics& m, bool fresh) {
  std::string text;
  if (!fresh) {
    absl::StatusOr<std::string> old = ReadCsv(path);
    if (!old.ok()) return old.status();
    text = *std::move(old);
  }
  if (text.empty()) text = kCsvHeader;
  absl::StrAppend(
      &text,
      absl::StrFormat("%d,%.6f,%.6f,%.6f,%.3f,%.1f\n", m.epoch, m.loss,
                      m.train_acc, m.test_acc, m.seconds, m.examples_per_sec));
  if (absl::Status s = WriteFileAtomically(path, text); !s.ok()) return s;
  return text;
}

// Makes the metrics CSV of a resumed run end where its checkpoint does: keeps
// the header and the complete rows of epochs 1..last_epoch, in order. Each
// epoch appends its row before saving its checkpoint, so a run killed in
// between leaves one row too many (the resumed run trains that epoch again);
// it is dropped here, as is a partial last line (from before writes were
// atomic).
absl::Status TrimCsv(const std::string& path, int64_t last_epoch) {
  absl::StatusOr<std::string> text = ReadCsv(path);
  if (!text.ok()) return text.status();
  std::string kept = kCsvHeader;
  int64_t previous = 0;
  std::vector<absl::string_view> lines = absl::StrSplit(*text, '\n');
  lines.pop_back();  // after the last newline: empty, or a partial row
  for (absl::string_view line : lines) {
    const std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
    int64_t epoch = 0;
    if (fields.size() != 6 || !absl::SimpleAtoi(fields[0], &epoch) ||
        epoch <= previous || epoch > last_epoch) {
      continue;
    }
    absl::StrAppend(&kept, line, "\n");
    previous = epoch;
  }
  return WriteFileAtomically(path, kept);
}

// Draws the curves of `csv` (its text) into `png`, aside and then renamed,
// so `png` is always a whole image.
absl::Status DrawPlot(absl::string_view csv, const std::string& png,
                      const std::string& title) {
  absl::StatusOr<AtomicFileWriter> out = AtomicFileWriter::Create(png);
  if (!out.ok()) return out.status();
  if (absl::Status s = PlotMetrics(csv, out->fd(), title); !s.ok()) return s;
  return out->Commit();
}

// metrics.csv gains each epoch's row, and metrics.png is redrawn from it.
class MetricsObserver : public TrainObserver {
 public:
  MetricsObserver(std::string dir, std::string title, bool fresh)
      : csv_(dir + "/metrics.csv"),
        png_(dir + "/metrics.png"),
        title_(std::move(title)),
        fresh_(fresh) {}

  absl::Status OnEpoch(const TrainState&, const EpochMetrics& m) override {
    absl::StatusOr<std::string> text = AppendCsv(csv_, m, fresh_);
    if (!text.ok()) return text.status();
    fresh_ = false;
    absl::Status plotted = DrawPlot(*text, png_, title_);
    LOG_IF(WARNING, !plotted.ok()) << "no plot: " << plotted;
    return absl::OkStatus();
  }

 private:
  const std::string csv_, png_, title_;
  bool fresh_;
};

// Saves the checkpoint pair after every epoch (after the CSV row: a kill in
// between leaves a row that resuming drops and writes again, never a gap),
// every `every` steps and when the run is asked to stop.
class CheckpointObserver : public TrainObserver {
 public:
  CheckpointObserver(std::string dir, std::string model, int64_t input_size,
                     int64_t every, TrainPosition resumed_at)
      : dir_(std::move(dir)),
        model_(std::move(model)),
        input_size_(input_size),
        every_(every),
        last_(resumed_at),
        any_(resumed_at.global_step > 0 || resumed_at.epoch > 0) {}

  absl::Status OnStep(const TrainState& state, const StepInfo&) override {
    if (every_ == 0 || state.position.global_step % every_ != 0) {
      return absl::OkStatus();
    }
    return Save(state);
  }

  absl::Status OnEpoch(const TrainState& state, const EpochMetrics&) override {
    TrainState done = state;  // the position after the epoch
    done.position.epoch += 1;
    done.position.step = 0;
    done.totals = {};
    return Save(done);
  }

  absl::Status OnStop(const TrainState& state) override { return Save(state); }

  // "<dir>/model.safetensors (epoch 2, step 17)", or "none".
  std::string LastGood() const {
    if (!any_) return "none";
    return absl::StrCat(
        dir_, "/", kWeightsFile, " (epoch ", last_.epoch,
        last_.step > 0 ? absl::StrCat(", step ", last_.step) : "", ")");
  }

 private:
  absl::Status Save(const TrainState& state) {
    // A step with a finite loss can still leave Inf or NaN weights: such a
    // model is not saved as a good checkpoint.
    if (absl::Status s = CheckFinite(state.model->StateDict()); !s.ok()) {
      return absl::AbortedError(absl::StrCat(
          "training diverged: at epoch ", state.position.epoch + 1, " step ",
          state.position.step, " the model's ", s.message(),
          "; last good checkpoint: ", LastGood(), ". Lower --lr"));
    }
    if (absl::Status s = SaveCheckpoint(dir_, state, model_, input_size_);
        !s.ok()) {
      return s;
    }
    last_ = state.position;
    any_ = true;
    return absl::OkStatus();
  }

  const std::string dir_, model_;
  const int64_t input_size_, every_;
  TrainPosition last_;
  bool any_;
};

// An exclusive flock on "<dir>/.lock" for as long as the run lasts, with the
// holder's pid in the file; released when the process ends, however.
class RunLock {
 public:
  static absl::StatusOr<std::unique_ptr<RunLock>> Acquire(
      const std::string& dir) {
    const std::string path = dir + "/.lock";
    const int fd =
        ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--out=", dir, ": cannot create ", path, ": ",
          errno == ELOOP ? "it is a symbolic link" : std::strerror(errno)));
    }
    std::unique_ptr<RunLock> lock(new RunLock(fd));
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_uid != geteuid()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--out=", dir, ": ", path, " is not a regular file of this user"));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      char pid[32] = {};
      const ssize_t n = ::pread(fd, pid, sizeof(pid) - 1, 0);
      return absl::FailedPreconditionError(absl::StrCat(
          "--out=", dir, ": another run (pid ",
          n > 0 ? absl::StripAsciiWhitespace(pid) : "unknown",
          ") is using this directory; wait for it to end or choose another "
          "--out"));
    }
    const std::string me = absl::StrCat(::getpid(), "\n");
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) !=
                                       static_cast<ssize_t>(me.size())) {
      LOG(WARNING) << "cannot write the pid into " << path;
    }
    return lock;
  }
  ~RunLock() { ::close(fd_); }

 private:
  explicit RunLock(int fd) : fd_(fd) {}
  const int fd_;
};

// The files a run writes in its directory (each also as "<name>.tmp").
constexpr const char* kRunFiles[] = {kWeightsFile, kPendingWeightsFile,
                                     kTrainStateFile, "metrics.csv",
                                     "metrics.png"};

// Checks that every file the run writes may be replaced (no symlink,
// device or other user's file planted in their place). Changes nothing.
absl::Status CheckRunFiles(const std::string& dir) {
  for (const char* name : kRunFiles) {
    const std::string path = absl::StrCat(dir, "/", name);
    for (const std::string& p : {path, path + ".tmp"}) {
      if (absl::Status s = CheckReplaceable(p); !s.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("--out=", dir, ": ", s.message()));
      }
    }
  }
  return absl::OkStatus();
}

// OK unless `dir` already holds a run (its weights, training state or
// metrics), which a run without --resume or --overwrite may not touch:
// FailedPrecondition naming what it found. Changes nothing.
absl::Status RefuseAnExistingRun(const std::string& dir) {
  std::vector<std::string> found;
  for (const char* name : {kWeightsFile, kTrainStateFile, "metrics.csv"}) {
    struct stat st;
    if (lstat(absl::StrCat(dir, "/", name).c_str(), &st) == 0) {
      found.push_back(name);
    }
  }
  if (found.empty()) return absl::OkStatus();
  const std::string checkpoint = DescribeCheckpoint(dir);
  return absl::FailedPreconditionError(absl::StrCat(
      "--out=", dir, " already holds a run (", absl::StrJoin(found, ", "),
      checkpoint.empty() ? "" : absl::StrCat("; ", checkpoint),
      "); pass --resume to continue it or --overwrite to replace it"));
}

// Once the run is accepted (RefuseAnExistingRun, Resume, which publishes
// the weights of a save cut short after its commit): removes the temporary
// files a killed run left behind, and pending weights that no checkpoint of
// this run names (a save cut short before its commit, or the run that
// --overwrite replaces), so that the run's first save starts clean
// (SaveCheckpoint).
void RemoveStaleTemps(const std::string& dir) {
  for (const char* name : kRunFiles) {
    const std::string path = absl::StrCat(dir, "/", name);
    if (RemoveStaleTemp(path)) {
      LOG(INFO) << "removed " << path << ".tmp, left by a run that was killed";
    }
  }
  // CheckRunFiles found it a regular file of this user, if there.
  const std::string pending = absl::StrCat(dir, "/", kPendingWeightsFile);
  if (::unlink(pending.c_str()) == 0) {
    LOG(INFO) << "removed " << pending << ", the weights of an unfinished save";
  }
}

// True when `module` or any submodule is a BatchNorm layer.
bool HasBatchNorm(const nn::Module& module) {
  for (const auto& [name, m] : module.NamedModules()) {
    if (dynamic_cast<const nn::BatchNormBase*>(m) != nullptr) return true;
  }
  return false;
}

// ---- Data parallelism (TrainOptions::process_group) ------------------------

// Examples [begin, end) of `data`.
data::InMemoryDataset Range(const data::InMemoryDataset& data, int64_t begin,
                            int64_t end) {
  const uint8_t* first = data.image_bytes(begin);
  std::vector<uint8_t> images(first, first + (end - begin) * data.image_size());
  std::vector<int64_t> labels(data.labels().begin() + begin,
                              data.labels().begin() + end);
  return data::InMemoryDataset(std::move(images), std::move(labels),
                               data.channels(), data.height(), data.width());
}

absl::Status BroadcastBuffers(distributed::ProcessGroup& group,
                              const nn::Module& model) {
  std::vector<Tensor> buffers;
  for (const auto& [name, buffer] : model.NamedBuffers()) {
    buffers.push_back(buffer);
  }
  return distributed::BroadcastTensors(group, buffers, /*root=*/0);
}

// Gives every rank rank 0's replica: parameters, buffers and training state
// (only rank 0 reads the checkpoint it resumes from).
absl::Status SyncReplicas(distributed::ProcessGroup& group,
                          distributed::DistributedDataParallel& ddp,
                          TrainState& state) {
  if (group.size() == 1) return absl::OkStatus();
  if (absl::Status s = ddp.BroadcastParameters(/*root=*/0); !s.ok()) return s;
  if (absl::Status s = BroadcastBuffers(group, *state.model); !s.ok()) return s;
  std::string bytes = group.rank() == 0 ? EncodeTrainState(state, 0) : "";
  uint64_t n = bytes.size();
  if (absl::Status s = group.BroadcastBytes(&n, sizeof(n), /*root=*/0);
      !s.ok()) {
    return s;
  }
  bytes.resize(n);
  if (absl::Status s = group.BroadcastBytes(bytes.data(), n, /*root=*/0);
      !s.ok()) {
    return s;
  }
  if (group.rank() == 0) return absl::OkStatus();
  absl::StatusOr<SavedTrainState> saved =
      DecodeTrainState(bytes, "rank 0's training state");
  if (!saved.ok()) return saved.status();
  return RestoreTrainState(*saved, state);
}

// `Evaluate(...).accuracy` of rank 0's model, with the test set split across
// the ranks: each evaluates its contiguous part with rank 0's buffers
// (BatchNorm's running statistics) and the counts are summed. No rank waits
// idle in a collective meanwhile, which the collective watchdog would count.
absl::StatusOr<EvalResult> EvaluateAcrossRanks(
    distributed::ProcessGroup& group, nn::Module& model,
    const data::InMemoryDataset& data, int64_t input_size, int64_t batch_size,
    int64_t limit) {
  if (group.size() == 1) {
    return Evaluate(model, data, input_size, batch_size, limit);
  }
  if (absl::Status s = BroadcastBuffers(group, model); !s.ok()) return s;
  const data::InMemoryDataset all = Head(data, limit);
  const int64_t begin = all.size() * group.rank() / group.size();
  const int64_t end = all.size() * (group.rank() + 1) / group.size();
  EvalResult mine;
  mine.confusion.assign(10, std::vector<int64_t>(10, 0));
  if (end > begin) {
    mine = Evaluate(model, Range(all, begin, end), input_size, batch_size);
  }
  // The confusion matrices summed over the ranks; the accuracy follows.
  std::vector<double> counts;
  for (const std::vector<int64_t>& row : mine.confusion) {
    counts.insert(counts.end(), row.begin(), row.end());
  }
  counts.push_back(static_cast<double>(end - begin));
  if (absl::Status s = group.AllReduceSum(counts.data(), counts.size());
      !s.ok()) {
    return s;
  }
  EvalResult result;
  double correct = 0;
  const size_t classes = mine.confusion.size();
  for (size_t i = 0; i < classes; ++i) {
    result.confusion.emplace_back(counts.begin() + i * classes,
                                  counts.begin() + (i + 1) * classes);
    correct += counts[i * classes + i];
  }
  result.accuracy = counts.back() == 0 ? 0.0 : correct / counts.back();
  return result;
}

}  // namespace

namespace {

// Each choice of a flag and its spelling, in the order --help lists them.
template <typename Kind>
using Choices = std::initializer_list<std::pair<Kind, const char*>>;
constexpr Choices<OptimizerKind> kOptimizers = {
    {OptimizerKind::kSgd, "sgd"},
    {OptimizerKind::kAdam, "adam"},
    {OptimizerKind::kAdamW, "adamw"}};
constexpr Choices<LrScheduleKind> kLrSchedules = {
    {LrScheduleKind::kConstant, "constant"},
    {LrScheduleKind::kStep, "step"},
    {LrScheduleKind::kCosine, "cosine"}};

template <typename Kind>
const char* NameOf(Choices<Kind> choices, Kind kind) {
  for (const auto& [k, name] : choices) {
    if (k == kind) return name;
  }
  LOG(FATAL) << "unnamed choice " << static_cast<int>(kind);
}

// InvalidArgument "--<flag>=<name>: must be a, b or c" for an unknown name.
template <typename Kind>
absl::StatusOr<Kind> Parse(Choices<Kind> choices, absl::string_view flag,
                           absl::string_view name) {
  std::vector<std::string> names;
  for (const auto& [k, n] : choices) {
    if (name == n) return k;
    names.push_back(n);
  }
  const std::string last = names.back();
  names.pop_back();
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, "=", Printable(name), ": must be ",
                   absl::StrJoin(names, ", "), " or ", last));
}

}  // namespace

const char* OptimizerName(OptimizerKind kind) {
  return NameOf(kOptimizers, kind);
}

const char* LrScheduleName(LrScheduleKind kind) {
  return NameOf(kLrSchedules, kind);
}

std::string AugmentName(bool flip, bool crop) {
  if (flip && crop) return "flip,crop";
  return flip ? "flip" : crop ? "crop" : "none";
}

absl::StatusOr<OptimizerKind> ParseOptimizer(absl::string_view name) {
  return Parse(kOptimizers, "optimizer", name);
}

absl::StatusOr<LrScheduleKind> ParseLrSchedule(absl::string_view name) {
  return Parse(kLrSchedules, "lr_schedule", name);
}

absl::Status ParseAugment(absl::string_view spec, bool* flip, bool* crop) {
  *flip = *crop = false;
  if (spec == "none") return absl::OkStatus();
  for (absl::string_view part : absl::StrSplit(spec, ',')) {
    bool* which = part == "flip" ? flip : part == "crop" ? crop : nullptr;
    if (which == nullptr || *which) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--augment=", Printable(spec),
          which == nullptr
              ? absl::StrCat(": unknown augmentation '", Printable(part), "'")
              : absl::StrCat(": '", part, "' given twice"),
          "; use none, flip, crop or flip,crop"));
    }
    *which = true;
  }
  return absl::OkStatus();
}

int CapThreads(int requested) {
  const long cores = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
  const long cap = kMaxThreadsPerCore * cores;
  if (requested <= cap) return requested;
  LOG(WARNING) << "--threads=" << requested << ": capped at " << cap << " ("
               << kMaxThreadsPerCore << " per core on " << cores << " cores)";
  return static_cast<int>(cap);
}

absl::Status ValidateOptions(const TrainOptions& o) {
  auto bad = [](absl::string_view flag, auto value, absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", value, ": ", why));
  };
  if (o.epochs <= 0) return bad("epochs", o.epochs, "must be positive");
  if (o.epochs > kMaxEpochs) {
    return bad("epochs", o.epochs,
               absl::StrCat("must be at most ", kMaxEpochs));
  }
  if (!(o.lr > 0) || !std::isfinite(o.lr)) {
    return bad("lr", o.lr, "must be a positive number");
  }
  if (o.batch_size <= 0)
    return bad("batch_size", o.batch_size, "must be positive");
  if (o.process_group != nullptr &&
      o.batch_size % o.process_group->size() != 0) {
    return bad("batch_size", o.batch_size,
               absl::StrCat("must be a multiple of the number of processes (",
                            o.process_group->size(), ")"));
  }
  if (o.input_size <= 0) return bad("resize", o.input_size, "must be positive");
  if (o.weight_decay < 0 || !std::isfinite(o.weight_decay)) {
    return bad("weight_decay", o.weight_decay, "must be >= 0");
  }
  if (!(o.momentum >= 0 && o.momentum < 1)) {  // NaN fails too
    return bad("momentum", o.momentum, "must be in [0, 1)");
  }
  if (o.momentum > 0 && o.optimizer != OptimizerKind::kSgd) {
    return bad("momentum", o.momentum,
               absl::StrCat("applies to --optimizer=sgd, not ",
                            OptimizerName(o.optimizer),
                            " (Adam's moments have fixed betas)"));
  }
  if (o.lr_schedule == LrScheduleKind::kStep) {
    if (o.lr_step_epochs <= 0 || o.lr_step_epochs > kMaxEpochs) {
      return bad("lr_step_epochs", o.lr_step_epochs,
                 absl::StrCat("must be in [1, ", kMaxEpochs,
                              "] with --lr_schedule=step"));
    }
    if (!(o.lr_gamma > 0) || !std::isfinite(o.lr_gamma)) {
      return bad("lr_gamma", o.lr_gamma, "must be a positive number");
    }
  }
  if (!(o.warmup_epochs >= 0 && o.warmup_epochs <= o.epochs)) {
    return bad("warmup_epochs", o.warmup_epochs,
               absl::StrCat("must be in [0, --epochs=", o.epochs, "]"));
  }
  if (!(o.clip_grad_norm >= 0) || !std::isfinite(o.clip_grad_norm)) {
    return bad("clip_grad_norm", o.clip_grad_norm, "must be >= 0 (0: off)");
  }
  if (o.checkpoint_every < 0) {
    return bad("checkpoint_every", o.checkpoint_every, "must be >= 0");
  }
  if (o.checkpoint_every > 0 && o.out_dir.empty()) {
    return bad("checkpoint_every", o.checkpoint_every,
               "needs --out (where to write the checkpoints)");
  }
  if (o.threads < 0) return bad("threads", o.threads, "must be >= 0");
  if (o.train_limit < 0)
    return bad("train_limit", o.train_limit, "must be >= 0");
  if (o.test_limit < 0) return bad("test_limit", o.test_limit, "must be >= 0");
  if (o.log_every <= 0)
    return bad("log_every", o.log_every, "must be positive");
  if (o.resume && o.overwrite) {
    return absl::InvalidArgumentError(
        "--resume and --overwrite contradict each other: continue the run in "
        "--out, or replace it");
  }
  if (o.resume && o.out_dir.empty()) {
    return absl::InvalidArgumentError(
        "--resume needs --out (the run to resume)");
  }
  if (absl::Status s = CheckPathFlag("out", o.out_dir); !s.ok()) return s;
  if (!o.out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.out_dir, ec);
    if (ec || access(o.out_dir.c_str(), W_OK) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--out=", o.out_dir, ": cannot create or write the directory",
          ec ? absl::StrCat(" (", ec.message(), ")") : ""));
    }
    // Writable in fact, not only by its mode bits (root, /proc): a file can
    // be created there.
    const std::string probe = o.out_dir + "/.write-test-XXXXXX";
    std::vector<char> name(probe.begin(), probe.end());
    name.push_back('\0');
    const int fd = mkostemp(name.data(), O_CLOEXEC);
    if (fd < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("--out=", o.out_dir, ": cannot create files there (",
                       std::strerror(errno), ")"));
    }
    close(fd);
    unlink(name.data());
    // In a shared place (/tmp/lenet) the directory, or a symlink standing
    // for it, may be someone else's: whoever owns it can plant files in it.
    struct stat link, dir;
    if (lstat(o.out_dir.c_str(), &link) != 0 ||
        stat(o.out_dir.c_str(), &dir) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("--out=", o.out_dir, ": ", std::strerror(errno)));
    }
    for (const struct stat* st : {&link, &dir}) {
      if (st->st_uid != geteuid()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "--out=", o.out_dir, ": ",
            st == &link && S_ISLNK(link.st_mode) ? "the symbolic link"
                                                 : "the directory",
            " belongs to uid ", st->st_uid, ", not to this user (uid ",
            geteuid(), "); choose a directory of your own"));
      }
    }
  }
  return absl::OkStatus();
}

EvalResult Evaluate(nn::Module& model, const data::InMemoryDataset& data,
                    int64_t input_size, int64_t batch_size, int64_t limit) {
  const data::InMemoryDataset subset = Head(data, limit);
  data::DataLoaderOptions lo;
  lo.batch_size = batch_size;
  lo.sampler.shuffle = false;
  // A no-op for input_size x input_size images.
  lo.transforms.resize = input_size;
  absl::StatusOr<data::DataLoader> loader =
      data::DataLoader::Create(subset, lo);
  CHECK(loader.ok()) << loader.status();
  const bool was_training = model.is_training();
  model.Eval();
  autograd::NoGradGuard no_grad;
  EvalResult result;
  result.confusion.assign(10, std::vector<int64_t>(10, 0));
  int64_t correct = 0, total = 0;
  loader->StartEpoch(0);
  data::Batch batch;
  while (loader->Next(&batch)) {
    const Tensor logits = model(autograd::Variable(batch.images)).data();
    const Tensor pred = ops::Argmax(logits, 1);
    const int64_t* p = pred.data<int64_t>();
    const int64_t* l = batch.labels.data<int64_t>();
    for (int64_t i = 0; i < batch.labels.numel(); ++i) {
      correct += p[i] == l[i];
      if (l[i] < 10 && p[i] < 10) ++result.confusion[l[i]][p[i]];
    }
    total += batch.labels.numel();
  }
  model.Train(was_training);
  result.accuracy = total == 0 ? 0.0 : static_cast<double>(correct) / total;
  return result;
}

namespace {

// The signal a stop was requested by (0: none), set by RequestStop.
volatile std::sig_atomic_t stop_signal = 0;
int honoured_signal = 0;

void OnStopSignal(int signal) {
  if (stop_signal == signal) {  // the second Ctrl-C: end now
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  RequestStop(signal);
}

// Salt of the dropout stream (reseeded before each step).
constexpr uint64_t kDropoutSalt = 0x44524f504f5554ULL;  // "DROPOUT"

// What --resume must not change, as the flags spell it.
std::map<std::string, std::string> Settings(const TrainOptions& o) {
  const auto num = [](double v) { return absl::StrFormat("%.9g", v); };
  std::map<std::string, std::string> s = {
      {"optimizer", OptimizerName(o.optimizer)},
      {"lr", num(o.lr)},
      {"batch_size", absl::StrCat(o.batch_size)},
      {"weight_decay", num(o.weight_decay)},
      {"momentum", num(o.momentum)},
      {"lr_schedule", LrScheduleName(o.lr_schedule)},
      {"warmup_epochs", num(o.warmup_epochs)},
      {"augment", AugmentName(o.augment_flip, o.augment_crop)},
      {"clip_grad_norm", num(o.clip_grad_norm)},
      {"seed", absl::StrCat(o.seed)},
      {"train_limit", absl::StrCat(o.train_limit)},
      {"precision",
       o.precision == MatmulPrecision::kBfloat16 ? "bf16" : "fp32"}};
  if (o.lr_schedule == LrScheduleKind::kStep) {
    s["lr_step_epochs"] = absl::StrCat(o.lr_step_epochs);
    s["lr_gamma"] = num(o.lr_gamma);
  }
  // The cosine's length is the run's.
  if (o.lr_schedule == LrScheduleKind::kCosine) {
    s["epochs"] = absl::StrCat(o.epochs);
  }
  return s;
}

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
                                                optim::Optimizer& optimizer) {
  switch (o.lr_schedule) {
    case LrScheduleKind::kStep:
      return std::make_unique<optim::StepLR>(
          optimizer, static_cast<int>(o.lr_step_epochs), o.lr_gamma);
    case LrScheduleKind::kCosine:
      return std::make_unique<optim::CosineAnnealingLR>(
          optimizer, static_cast<int>(o.epochs));
    case LrScheduleKind::kConstant:
      break;
  }
  return nullptr;
}

// The classes of `data`: one more than its largest label.
int64_t NumClasses(const data::InMemoryDataset& data) {
  int64_t most = -1;
  for (int64_t label : data.labels()) most = std::max(most, label);
  return most + 1;
}

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

// Fits the position restored from `saved` into `state`'s run and says how
// that run differs from the one it continues: not bit for bit (other
// processes, threads or kernels), and, with fewer batches per epoch than the
// checkpoint's (more processes, which drop the last partial batch), maybe an
// epoch whose batches are all taken already: it is then at its last step,
// and ends without another batch.
void FitToThisRun(const SavedTrainState& saved, TrainState& state) {
  const RunEnvironment& now = state.environment;
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

// Resumes `state` from the checkpoint in `dir` (rank 0) for a run over
// `examples` training examples: everything is read and checked before
// anything changes, on disk or in memory. Then a save cut short is
// completed and the CSV trimmed to the checkpoint.
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
    FitToThisRun(*run->state, state);
  } else {
    state.position = {c.epoch, 0, 0};
    if (state.schedule != nullptr) {
      state.schedule->SetEpoch(static_cast<int>(c.epoch));
    }
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
  return TrimCsv(absl::StrCat(dir, "/metrics.csv"), p.epoch);
}

// The options of the training loader of rank `rank` of `ranks`.
data::DataLoaderOptions TrainLoaderOptions(const TrainOptions& o, int rank,
                                           int ranks) {
  data::DataLoaderOptions lo;
  // --batch_size is the global batch: each rank takes 1/size of every batch
  // (shard k: positions k, k + size, ... of the epoch's order) and the
  // gradients are averaged, so a run on any number of ranks follows the
  // single-process run up to float rounding (but BatchNorm's batch
  // statistics are per rank). Several ranks drop the epoch's last partial
  // batch, so that all take the same number of steps.
  lo.batch_size = o.batch_size / ranks;
  lo.sampler.num_shards = ranks;
  lo.sampler.shard_index = rank;
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
  return lo;
}

// Training BatchNorm normalizes by the batch's statistics, which one example
// does not have: never hand it a batch of 1.
absl::Status AvoidBatchesOfOne(const models::ModelSpec& spec,
                               const nn::Module& model, int64_t examples,
                               int64_t global_batch, int ranks, bool root,
                               data::DataLoaderOptions& lo) {
  if (!HasBatchNorm(model)) return absl::OkStatus();
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

void RequestStop(int signal) { stop_signal = signal; }

void InstallStopHandlers() {
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
}

int StoppedBySignal() { return honoured_signal; }

bool StopRequested() { return stop_signal != 0; }

absl::StatusOr<TrainSummary> Train(const models::ModelSpec& spec,
                                   const TrainOptions& options,
                                   const data::InMemoryDataset& train_data,
                                   const data::InMemoryDataset& test_data) {
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
                                   const data::InMemoryDataset& train_data,
                                   const data::InMemoryDataset& test_data) {
  if (absl::Status s = ValidateOptions(o); !s.ok()) return s;
  for (const data::InMemoryDataset* data : {&train_data, &test_data}) {
    if (data->channels() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("the models take 1-channel images; the ",
                       data == &train_data ? "training" : "test", " data has ",
                       data->channels(), " channels"));
    }
  }
  SetNumThreads(CapThreads(o.threads));
  const ScopedMatmulPrecision precision(o.precision);
  // Data parallelism: this process is rank `group.rank()` of `group.size()`;
  // rank 0 alone prints progress and writes files.
  distributed::LocalProcessGroup single_process;
  distributed::ProcessGroup& group =
      o.process_group != nullptr ? *o.process_group : single_process;
  const bool root = group.rank() == 0;
  const bool writes = root && !o.out_dir.empty();
  const data::InMemoryDataset train = Head(train_data, o.train_limit);
  const int64_t classes = NumClasses(train);
  data::DataLoaderOptions lo =
      TrainLoaderOptions(o, group.rank(), group.size());
  if (absl::Status s = AvoidBatchesOfOne(spec, model, train.size(),
                                         o.batch_size, group.size(), root, lo);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<data::DataLoader> loader = data::DataLoader::Create(train, lo);
  if (!loader.ok()) return loader.status();
  const int64_t steps_per_epoch = loader->num_batches();

  std::unique_ptr<optim::Optimizer> optimizer =
      MakeOptimizer(o, model.Parameters());
  std::unique_ptr<optim::LrSchedule> schedule = MakeSchedule(o, *optimizer);
  TrainState state;
  state.model = &model;
  state.optimizer = optimizer.get();
  state.schedule = schedule.get();
  state.settings = Settings(o);
  state.environment = {steps_per_epoch, group.size(), GetNumThreads(),
                       std::string(IsaName(ActiveIsa()))};

  std::unique_ptr<RunLock> lock;  // held until Train returns
  if (writes) {
    absl::StatusOr<std::unique_ptr<RunLock>> locked =
        RunLock::Acquire(o.out_dir);
    if (!locked.ok()) return locked.status();
    lock = *std::move(locked);
    // Nothing in the directory changes before the run is accepted.
    if (absl::Status s = CheckRunFiles(o.out_dir); !s.ok()) return s;
    if (!o.resume && !o.overwrite) {
      if (absl::Status s = RefuseAnExistingRun(o.out_dir); !s.ok()) return s;
    }
    if (o.resume) {
      if (absl::Status s = Resume(o.out_dir, spec, o, train.size(), state);
          !s.ok()) {
        return s;
      }
    }
    RemoveStaleTemps(o.out_dir);
  }
  distributed::DistributedDataParallel ddp(group, model.Parameters());
  if (absl::Status s = SyncReplicas(group, ddp, state); !s.ok()) return s;

  const double warmup_steps = o.warmup_epochs * steps_per_epoch;

  ProgressObserver progress(o.progress, o.log_every);
  std::optional<MetricsObserver> metrics;
  std::optional<CheckpointObserver> checkpoints;
  std::vector<TrainObserver*> observers;
  if (root) observers.push_back(&progress);
  if (writes) {
    metrics.emplace(o.out_dir, spec.description, /*fresh=*/!o.resume);
    checkpoints.emplace(o.out_dir, spec.name, o.input_size, o.checkpoint_every,
                        state.position);
    observers.push_back(&*metrics);
    observers.push_back(&*checkpoints);
  }
  if (root)
    observers.insert(observers.end(), o.observers.begin(), o.observers.end());
  const auto last_good = [&] {
    return absl::StrCat("last good checkpoint: ",
                        checkpoints ? checkpoints->LastGood() : "none");
  };
  const auto notify = [&](auto&& call) -> absl::Status {
    for (TrainObserver* observer : observers) {
      if (absl::Status s = call(*observer); !s.ok()) return s;
    }
    return absl::OkStatus();
  };

  TrainSummary summary;
  TrainPosition& at = state.position;
  EpochTotals& totals = state.totals;
  while (at.epoch < o.epochs) {
    const int64_t epoch = at.epoch + 1;
    model.Train();
    if (schedule) schedule->SetEpoch(static_cast<int>(at.epoch));
    const float epoch_lr = optimizer->lr();
    loader->StartEpoch(at.epoch, at.step);
    const Clock::time_point start = Clock::now();
    const double seconds_before = totals.seconds;
    data::Batch batch;
    while (loader->Next(&batch)) {
      // Linear warm-up, step by step; the rate is a function of the position.
      const float lr =
          at.global_step < warmup_steps
              ? static_cast<float>(epoch_lr * (at.global_step + 1) /
                                   std::ceil(warmup_steps))
              : epoch_lr;
      optimizer->set_lr(lr);
      DefaultGenerator().Seed(CombineSeeds(
          {kDropoutSalt, o.seed, static_cast<uint64_t>(group.rank()),
           static_cast<uint64_t>(at.global_step)}));
      ++at.step;
      ++at.global_step;
      autograd::Variable logits = model(autograd::Variable(batch.images));
      if (logits.shape().rank() != 2 || logits.shape()[1] < classes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the training data has ", classes, " classes (labels 0..",
            classes - 1, ") but ", spec.name, " outputs ",
            logits.shape().ToString(), " per batch"));
      }
      autograd::Variable loss = SoftmaxCrossEntropy(logits, batch.labels);
      // One collective per step: the loss and the correct predictions over
      // the global batch, and whether any rank is asked to stop (so every
      // rank takes the same branches).
      double reduced[3] = {
          loss.data().item(), stop_signal != 0 ? 1.0 : 0.0,
          static_cast<double>(CountCorrect(logits.data(), batch.labels))};
      if (absl::Status s = group.AllReduceSum(reduced, 3); !s.ok()) return s;
      const double l = reduced[0] / group.size();
      const bool stop = reduced[1] > 0;
      if (!std::isfinite(l)) {
        if (!o.skip_nonfinite) {
          return absl::AbortedError(absl::StrCat(
              "training diverged: loss is ", l, " at epoch ", epoch, " step ",
              at.step, "; ", last_good(),
              ". Lower --lr, or pass --skip_nonfinite to skip such steps"));
        }
        ++state.skipped_steps;
        LOG_IF(WARNING, root)
            << "epoch " << epoch << " step " << at.step << ": loss is " << l
            << ", step skipped (--skip_nonfinite)";
      } else {
        optimizer->ZeroGrad();
        loss.Backward();
        for (TrainObserver* observer : observers) {
          observer->OnAfterBackward(state);
        }
        if (absl::Status s = ddp.AllReduceGradients(); !s.ok()) return s;
        if (o.clip_grad_norm > 0) {
          optim::ClipGradNorm(model.Parameters(), o.clip_grad_norm);
        }
        optimizer->Step();
        // Every rank's batches are the same size.
        const int64_t n = batch.labels.numel() * group.size();
        totals.loss_sum += l * n;
        totals.correct += static_cast<int64_t>(reduced[2]);
        totals.seen += n;
      }
      totals.seconds = seconds_before + Seconds(start);
      const int64_t global_batch = batch.labels.numel() * group.size();
      const StepInfo info{steps_per_epoch, global_batch, l,
                          reduced[2] / global_batch, lr};
      if (absl::Status s =
              notify([&](TrainObserver& ob) { return ob.OnStep(state, info); });
          !s.ok()) {
        return s;
      }
      if (stop) {
        honoured_signal = stop_signal == 0 ? SIGTERM : stop_signal;
        stop_signal = 0;
        if (absl::Status s =
                notify([&](TrainObserver& ob) { return ob.OnStop(state); });
            !s.ok()) {
          return s;
        }
        return absl::CancelledError(absl::StrCat(
            "stopped by ", strsignal(honoured_signal), " at epoch ", epoch,
            " step ", at.step, " of ", steps_per_epoch,
            writes ? absl::StrCat("; the run is saved in ", o.out_dir,
                                  ": continue it with --resume")
                   : std::string("; nothing was saved (no --out)")));
      }
    }
    if (at.step > 0 && totals.seen == 0) {
      return absl::AbortedError(absl::StrCat(
          "training diverged: every step of epoch ", epoch, " (", at.step,
          " of ", at.step,
          ") had a non-finite loss and was skipped (--skip_nonfinite), so "
          "nothing was trained; ",
          last_good(), ". Lower --lr"));
    }
    EpochMetrics m;
    m.epoch = epoch;
    m.seconds = totals.seconds;
    m.loss = totals.seen == 0 ? 0 : totals.loss_sum / totals.seen;
    m.train_acc = totals.seen == 0
                      ? 0
                      : static_cast<double>(totals.correct) / totals.seen;
    m.examples_per_sec = totals.seen / std::max(m.seconds, 1e-9);
    absl::StatusOr<EvalResult> test = EvaluateAcrossRanks(
        group, model, test_data, o.input_size, o.batch_size, o.test_limit);
    if (!test.ok()) return test.status();
    m.test_acc = test->accuracy;
    m.confusion = std::move(test->confusion);
    summary.epochs.push_back(m);
    if (absl::Status s =
            notify([&](TrainObserver& ob) { return ob.OnEpoch(state, m); });
        !s.ok()) {
      return s;
    }
    at.epoch = epoch;
    at.step = 0;
    totals = {};
  }
  summary.skipped_steps = state.skipped_steps;
  return summary;
}

}  // namespace dive::train
