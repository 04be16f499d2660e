#include "tools/training.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "autograd/functions.h"
#include "datasets/data_loader.h"
#include "glog/logging.h"
#include "nn/batch_norm.h"
#include "optim/distributed/data_parallel.h"
#include "optim/distributed/process_group.h"
#include "optim/sgd.h"
#include "tensor/file_io.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tools/plot.h"

namespace dive::tools {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// The first n examples (all when n is 0 or larger than the data).
InMemoryDataset Head(const InMemoryDataset& data, int64_t n) {
  if (n <= 0 || n >= data.size()) return data;
  const uint8_t* first = data.image_bytes(0);
  std::vector<uint8_t> images(first, first + n * data.image_size());
  std::vector<int64_t> labels(data.labels().begin(), data.labels().begin() + n);
  return InMemoryDataset(std::move(images), std::move(labels), data.channels(),
                         data.height(), data.width());
}

int64_t CountCorrect(const Tensor& logits, const Tensor& labels) {
  const Tensor pred = ops::Argmax(logits, 1);
  const int64_t* p = pred.data<int64_t>();
  const int64_t* l = labels.data<int64_t>();
  int64_t correct = 0;
  for (int64_t i = 0; i < labels.numel(); ++i) correct += p[i] == l[i];
  return correct;
}

// One line that redraws itself on a terminal.
class Progress {
 public:
  Progress(bool enabled, int64_t total, int64_t log_every)
      : tty_(enabled && isatty(STDERR_FILENO)),
        enabled_(enabled),
        total_(total),
        log_every_(log_every) {}

  void Update(int64_t step, int64_t examples, double loss, double seconds) {
    if (!enabled_) return;
    const double rate = examples / std::max(seconds, 1e-9);
    const double eta = (total_ - step) * seconds / std::max<int64_t>(step, 1);
    if (tty_) {
      constexpr int kWidth = 30;
      const int filled =
          static_cast<int>(kWidth * step / std::max<int64_t>(total_, 1));
      std::fprintf(stderr,
                   "\r  [%s%s] %ld/%ld  loss %.4f  %.0f ex/s  ETA %.0fs ",
                   std::string(filled, '#').c_str(),
                   std::string(kWidth - filled, '.').c_str(), step, total_,
                   loss, rate, eta);
      std::fflush(stderr);
    } else if (step % log_every_ == 0 || step == total_) {
      LOG(INFO) << absl::StrFormat("step %d/%d  loss %.4f  %.0f examples/s",
                                   step, total_, loss, rate);
    }
  }

  void Finish() {
    if (tty_) std::fprintf(stderr, "\r%*s\r", 100, "");
  }

 private:
  const bool tty_, enabled_;
  const int64_t total_, log_every_;
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
  absl::StrAppend(&text, absl::StrFormat("%d,%.6f,%.6f,%.6f,%.3f,%.1f\n",
                                         m.epoch, m.loss, m.train_acc,
                                         m.test_acc, m.seconds,
                                         m.examples_per_sec));
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
      return absl::FailedPreconditionError(
          absl::StrCat("--out=", dir, ": cannot create ", path, ": ",
                       errno == ELOOP ? "it is a symbolic link"
                                      : std::strerror(errno)));
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
    if (::ftruncate(fd, 0) != 0 ||
        ::pwrite(fd, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
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
constexpr const char* kRunFiles[] = {"model.safetensors", "metrics.csv",
                                     "metrics.png"};

// Before anything is trained: removes the temporary files a killed run left
// behind and checks that every file the run writes may be replaced (no
// symlink, device or other user's file planted in their place).
absl::Status PrepareOutDir(const std::string& dir) {
  for (const char* name : kRunFiles) {
    const std::string path = absl::StrCat(dir, "/", name);
    if (RemoveStaleTemp(path)) {
      LOG(INFO) << "removed " << path << ".tmp, left by a run that was killed";
    }
    for (const std::string& p : {path, path + ".tmp"}) {
      if (absl::Status s = CheckReplaceable(p); !s.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("--out=", dir, ": ", s.message()));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status SaveCheckpoint(const std::string& path, const nn::Module& model,
                            const std::string& model_name, int64_t epoch,
                            int64_t input_size) {
  SafetensorsFile file;
  file.tensors = model.StateDict();
  file.metadata["model"] = model_name;
  file.metadata["epoch"] = absl::StrCat(epoch);
  file.metadata["input_size"] = absl::StrCat(input_size);
  return SaveSafetensors(path, file);
}

// OK, or InvalidArgument "tensor '<name>' holds <value> at element <i> of
// <n>" for the first NaN or Inf among the float tensors.
absl::Status CheckFinite(const std::map<std::string, Tensor>& tensors) {
  for (const auto& [name, t] : tensors) {
    if (t.dtype() != DType::kFloat32) continue;
    const Tensor c = t.Contiguous();
    const float* v = c.data<float>();
    for (int64_t i = 0; i < c.numel(); ++i) {
      if (!std::isfinite(v[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", name, "' holds ", v[i], " at element ", i,
                         " of ", c.numel()));
      }
    }
  }
  return absl::OkStatus();
}

// True when `module` or any submodule is a BatchNorm layer.
bool HasBatchNorm(const nn::Module& module) {
  if (dynamic_cast<const nn::BatchNormBase*>(&module) != nullptr) return true;
  for (const auto& [name, child] : module.children()) {
    if (HasBatchNorm(*child)) return true;
  }
  return false;
}

// ---- Data parallelism (TrainOptions::process_group) ------------------------

// Examples [begin, end) of `data`.
InMemoryDataset Range(const InMemoryDataset& data, int64_t begin, int64_t end) {
  const uint8_t* first = data.image_bytes(begin);
  std::vector<uint8_t> images(first, first + (end - begin) * data.image_size());
  std::vector<int64_t> labels(data.labels().begin() + begin,
                              data.labels().begin() + end);
  return InMemoryDataset(std::move(images), std::move(labels), data.channels(),
                         data.height(), data.width());
}

absl::Status BroadcastBuffers(distributed::ProcessGroup& group,
                              const nn::Module& model) {
  std::vector<Tensor> buffers;
  for (const auto& [name, buffer] : model.NamedBuffers()) {
    buffers.push_back(buffer);
  }
  return distributed::BroadcastTensors(group, buffers, /*root=*/0);
}

// Gives every rank rank 0's replica: its epoch (only rank 0 reads a
// checkpoint to resume from), parameters and buffers.
absl::Status SyncReplicas(distributed::ProcessGroup& group,
                          distributed::DistributedDataParallel& ddp,
                          const nn::Module& model, int64_t* start_epoch) {
  if (group.size() == 1) return absl::OkStatus();
  if (absl::Status s = group.BroadcastBytes(start_epoch, sizeof(*start_epoch),
                                            /*root=*/0);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ddp.BroadcastParameters(/*root=*/0); !s.ok()) return s;
  return BroadcastBuffers(group, model);
}

// `Evaluate(...).accuracy` of rank 0's model, with the test set split across
// the ranks: each evaluates its contiguous part with rank 0's buffers
// (BatchNorm's running statistics) and the counts are summed. No rank waits
// idle in a collective meanwhile, which the collective watchdog would count.
absl::StatusOr<double> EvaluateAcrossRanks(distributed::ProcessGroup& group,
                                           nn::Module& model,
                                           const InMemoryDataset& data,
                                           int64_t input_size,
                                           int64_t batch_size, int64_t limit) {
  if (group.size() == 1) {
    return Evaluate(model, data, input_size, batch_size, limit).accuracy;
  }
  if (absl::Status s = BroadcastBuffers(group, model); !s.ok()) return s;
  const InMemoryDataset all = Head(data, limit);
  const int64_t begin = all.size() * group.rank() / group.size();
  const int64_t end = all.size() * (group.rank() + 1) / group.size();
  double counts[2] = {0, static_cast<double>(end - begin)};  // correct, total
  if (end > begin) {
    counts[0] = std::round(
        Evaluate(model, Range(all, begin, end), input_size, batch_size)
            .accuracy *
        counts[1]);
  }
  if (absl::Status s = group.AllReduceSum(counts, 2); !s.ok()) return s;
  return counts[1] == 0 ? 0.0 : counts[0] / counts[1];
}

}  // namespace

absl::Status CheckPathFlag(absl::string_view flag, absl::string_view path) {
  for (size_t i = 0; i < path.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(path[i]);
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--%s=\"%s\": byte %d is a control character (0x%02x); paths "
          "may not contain control characters",
          flag, absl::CHexEscape(path), i, c));
    }
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
    return bad("epochs", o.epochs, absl::StrCat("must be at most ", kMaxEpochs));
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

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path,
                                          bool follow_symlink) {
  absl::StatusOr<SafetensorsFile> file = LoadSafetensors(path, follow_symlink);
  if (!file.ok()) return file.status();
  Checkpoint c;
  c.file = *std::move(file);
  const auto& meta = c.file.metadata;
  // Each recorded number must be one a run could have written.
  const struct {
    const char* key;
    int64_t* value;
    int64_t min, max;
  } fields[] = {{"epoch", &c.epoch, 0, kMaxEpochs},
                {"input_size", &c.input_size, 1, kMaxInputSize}};
  for (const auto& f : fields) {
    auto it = meta.find(f.key);
    if (it == meta.end()) continue;
    if (!absl::SimpleAtoi(it->second, f.value) || *f.value < f.min ||
        *f.value > f.max) {
      return absl::DataLossError(absl::StrCat(
          "checkpoint ", path, ": metadata ", f.key, " \"",
          absl::CHexEscape(it->second.substr(0, 40)),
          "\" is not an integer in [", f.min, ", ", f.max, "]"));
    }
  }
  if (auto it = meta.find("model"); it != meta.end()) c.model = it->second;
  LOG_IF(WARNING, !c.file.checksum_verified)
      << "checkpoint " << path
      << " has no dive.crc32 checksum (not written by dive?): its integrity "
         "was not checked";
  // Weights of a diverged run would evaluate or resume as if nothing were
  // wrong.
  if (absl::Status s = CheckFinite(c.file.tensors); !s.ok()) {
    return absl::DataLossError(absl::StrCat(
        "checkpoint ", path, ": ", s.message(),
        "; these weights come from a diverged run"));
  }
  return c;
}

namespace {

absl::Status LoadInto(const Checkpoint& c, const std::string& path,
                      nn::Module& model) {
  if (absl::Status s = model.LoadStateDict(c.file.tensors); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint ", path, " does not fit the model: ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LoadCheckpoint(const std::string& path, nn::Module& model,
                            int64_t* epoch) {
  absl::StatusOr<Checkpoint> c = ReadCheckpoint(path, /*follow_symlink=*/false);
  if (!c.ok()) return c.status();
  if (absl::Status s = LoadInto(*c, path, model); !s.ok()) return s;
  if (epoch != nullptr) *epoch = c->epoch;
  return absl::OkStatus();
}

EvalResult Evaluate(nn::Module& model, const InMemoryDataset& data,
                    int64_t input_size, int64_t batch_size, int64_t limit) {
  const InMemoryDataset subset = Head(data, limit);
  DataLoaderOptions lo;
  lo.batch_size = batch_size;
  lo.shuffle = false;
  lo.resize = input_size;  // a no-op for input_size x input_size images
  absl::StatusOr<DataLoader> loader = DataLoader::Create(subset, lo);
  CHECK(loader.ok()) << loader.status();
  const bool was_training = model.is_training();
  model.Eval();
  NoGradGuard no_grad;
  EvalResult result;
  result.confusion.assign(10, std::vector<int64_t>(10, 0));
  int64_t correct = 0, total = 0;
  loader->StartEpoch(0);
  Batch batch;
  while (loader->Next(&batch)) {
    const Tensor logits = model(Variable(batch.images)).data();
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

absl::StatusOr<TrainSummary> Train(const models::ModelSpec& spec,
                                   const TrainOptions& options,
                                   const InMemoryDataset& train_data,
                                   const InMemoryDataset& test_data) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  for (const InMemoryDataset* data : {&train_data, &test_data}) {
    if (data->channels() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("the models take 1-channel images; the ",
                       data == &train_data ? "training" : "test", " data has ",
                       data->channels(), " channels"));
    }
  }
  SetNumThreads(CapThreads(options.threads));
  ManualSeed(options.seed);
  const ScopedMatmulPrecision precision(options.precision);
  absl::StatusOr<std::shared_ptr<nn::Module>> made =
      spec.make(options.input_size);
  if (!made.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--resize=", options.input_size, ": ", made.status().message()));
  }
  nn::Module& model = **made;
  // Data parallelism: this process is rank `group.rank()` of `group.size()`;
  // rank 0 alone prints progress and writes files.
  distributed::LocalProcessGroup single_process;
  distributed::ProcessGroup& group = options.process_group != nullptr
                                         ? *options.process_group
                                         : single_process;
  const bool root = group.rank() == 0;

  const std::string checkpoint =
      options.out_dir.empty() ? "" : options.out_dir + "/model.safetensors";
  const std::string csv = options.out_dir + "/metrics.csv";
  int64_t start_epoch = 0;
  std::unique_ptr<RunLock> lock;  // held until Train returns
  if (!options.out_dir.empty() && root) {
    absl::StatusOr<std::unique_ptr<RunLock>> locked =
        RunLock::Acquire(options.out_dir);
    if (!locked.ok()) return locked.status();
    lock = *std::move(locked);
    if (absl::Status s = PrepareOutDir(options.out_dir); !s.ok()) return s;
    if (!options.resume && !options.overwrite) {
      std::vector<std::string> found;
      for (const char* name : {"model.safetensors", "metrics.csv"}) {
        struct stat st;
        const std::string path = absl::StrCat(options.out_dir, "/", name);
        if (lstat(path.c_str(), &st) == 0) found.push_back(name);
      }
      if (!found.empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "--out=", options.out_dir, " already holds a run (",
            absl::StrJoin(found, ", "),
            "); pass --resume to continue it or --overwrite to replace it"));
      }
    }
  }
  if (options.resume && root) {  // the other ranks get rank 0's state below
    // Everything is checked before anything on disk changes.
    absl::StatusOr<Checkpoint> c =
        ReadCheckpoint(checkpoint, /*follow_symlink=*/false);
    if (!c.ok()) return c.status();
    if (!c->model.empty() && c->model != spec.name) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint ", checkpoint, " is of model '",
                       absl::CHexEscape(c->model), "', not ", spec.name));
    }
    if (c->input_size != 0 && c->input_size != options.input_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--resize=", options.input_size, ": checkpoint ", checkpoint,
          " was trained at input size ", c->input_size,
          "; resume with --resize=", c->input_size));
    }
    if (absl::Status s = LoadInto(*c, checkpoint, model); !s.ok()) return s;
    start_epoch = c->epoch;
    if (start_epoch >= options.epochs) {
      LOG(WARNING) << checkpoint << " already holds epoch " << start_epoch
                   << " and --epochs=" << options.epochs
                   << ": nothing to train; pass a larger --epochs to go on";
    } else {
      LOG(INFO) << "resuming " << spec.name << " from " << checkpoint
                << " after epoch " << start_epoch;
    }
    if (absl::Status s = TrimCsv(csv, start_epoch); !s.ok()) return s;
  }

  distributed::DistributedDataParallel ddp(group, model.Parameters());
  if (absl::Status s = SyncReplicas(group, ddp, model, &start_epoch); !s.ok()) {
    return s;
  }
  // Different dropout masks on every rank (the replicas are already equal).
  if (!root) ManualSeed(options.seed + 0x9E3779B97F4A7C15ull * group.rank());

  optim::SGDOptions so;
  so.lr = options.lr;
  so.momentum = options.momentum;
  so.weight_decay = options.weight_decay;
  optim::SGD sgd(model.Parameters(), so);

  const InMemoryDataset train = Head(train_data, options.train_limit);
  DataLoaderOptions lo;
  // --batch_size is the global batch: each rank takes 1/size of every batch
  // (shard k: positions k, k + size, ... of the epoch's order) and the
  // gradients are averaged, so a run on any number of ranks follows the
  // single-process run up to float rounding (but BatchNorm's batch
  // statistics are per rank). Several ranks drop the epoch's last partial
  // batch, so that all take the same number of steps.
  lo.batch_size = options.batch_size / group.size();
  lo.num_shards = group.size();
  lo.shard_index = group.rank();
  lo.drop_last = group.size() > 1;
  lo.shuffle = true;
  lo.seed = options.seed;
  // Always set: the loader resizes only images of another height or width.
  lo.resize = options.input_size;
  // The loader prepares batches on its own thread while the model computes
  // on all cores; one thread for its transforms avoids oversubscription.
  lo.num_threads = 1;
  // Training BatchNorm normalizes by the batch's statistics, which one
  // example does not have: never hand it a batch of 1.
  if (HasBatchNorm(model)) {
    if (lo.batch_size == 1 || train.size() == 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          train.size() == 1 ? "the training set has 1 example"
                            : absl::StrCat("--batch_size=", options.batch_size,
                                           group.size() > 1
                                               ? absl::StrCat(
                                                     " over ", group.size(),
                                                     " processes")
                                               : "",
                                           " gives batches of 1 example"),
          ": ", spec.name,
          " has BatchNorm, which needs at least 2 examples per batch to "
          "train"));
    }
    if (!lo.drop_last && train.size() % lo.batch_size == 1) {
      lo.drop_last = true;
      LOG_IF(INFO, root) << "each epoch drops its last batch (1 example of "
                         << train.size() << "): " << spec.name
                         << " has BatchNorm, which cannot train on 1 example";
    }
  }
  absl::StatusOr<DataLoader> loader = DataLoader::Create(train, lo);
  if (!loader.ok()) return loader.status();

  TrainSummary summary;
  int64_t last_good_epoch = start_epoch;
  const auto last_good = [&] {
    return absl::StrCat(
        "last good checkpoint: ",
        checkpoint.empty() || last_good_epoch == 0
            ? std::string("none")
            : absl::StrCat(checkpoint, " (epoch ", last_good_epoch, ")"));
  };
  for (int64_t epoch = start_epoch + 1; epoch <= options.epochs; ++epoch) {
    model.Train();
    Progress progress(options.progress && root, loader->num_batches(),
                      options.log_every);
    const Clock::time_point start = Clock::now();
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, step = 0;
    loader->StartEpoch(epoch - 1);
    Batch batch;
    while (loader->Next(&batch)) {
      ++step;
      Variable logits = model(Variable(batch.images));
      Variable loss = SoftmaxCrossEntropy(logits, batch.labels);
      // The mean over the global batch: every rank takes the same branch.
      float l = loss.data().item();
      if (absl::Status s = group.AllReduceMean(&l, 1); !s.ok()) return s;
      if (!std::isfinite(l)) {
        if (options.skip_nonfinite) {
          ++summary.skipped_steps;
          LOG_IF(WARNING, root)
              << "epoch " << epoch << " step " << step << ": loss is " << l
              << ", step skipped (--skip_nonfinite)";
          continue;
        }
        progress.Finish();
        return absl::AbortedError(absl::StrCat(
            "training diverged: loss is ", l, " at epoch ", epoch, " step ",
            step, "; ", last_good(), ". Lower --lr, or pass --skip_nonfinite to skip such steps"));
      }
      sgd.ZeroGrad();
      loss.Backward();
      if (absl::Status s = ddp.AllReduceGradients(); !s.ok()) return s;
      sgd.Step();
      const int64_t n = batch.labels.numel();
      loss_sum += static_cast<double>(l) * n;
      correct += CountCorrect(logits.data(), batch.labels);
      seen += n;
      // Every rank's batches are the same size: `seen` times the ranks.
      progress.Update(step, seen * group.size(), loss_sum / seen,
                      Seconds(start));
    }
    progress.Finish();
    if (step > 0 && seen == 0) {  // every rank takes the same branches
      return absl::AbortedError(absl::StrCat(
          "training diverged: every step of epoch ", epoch, " (", step,
          " of ", step, ") had a non-finite loss and was skipped "
          "(--skip_nonfinite), so nothing was trained; ", last_good(),
          ". Lower --lr"));
    }
    if (group.size() > 1) {  // the epoch's totals over all ranks
      double totals[3] = {loss_sum, static_cast<double>(correct),
                          static_cast<double>(seen)};
      if (absl::Status s = group.AllReduceSum(totals, 3); !s.ok()) return s;
      loss_sum = totals[0];
      correct = static_cast<int64_t>(totals[1]);
      seen = static_cast<int64_t>(totals[2]);
    }
    EpochMetrics m;
    m.epoch = epoch;
    m.seconds = Seconds(start);
    m.loss = seen == 0 ? 0 : loss_sum / seen;
    m.train_acc = seen == 0 ? 0 : static_cast<double>(correct) / seen;
    m.examples_per_sec = seen / std::max(m.seconds, 1e-9);
    absl::StatusOr<double> test_acc =
        EvaluateAcrossRanks(group, model, test_data, options.input_size,
                            options.batch_size, options.test_limit);
    if (!test_acc.ok()) return test_acc.status();
    m.test_acc = *test_acc;
    if (root) {
      std::printf(
          "epoch %ld: loss %.3f, train acc %.3f, test acc %.3f, %.1f "
          "examples/sec\n",
          m.epoch, m.loss, m.train_acc, m.test_acc, m.examples_per_sec);
      std::fflush(stdout);
    }
    summary.epochs.push_back(m);

    // A step with a finite loss can still leave Inf or NaN weights: such a
    // model is not saved as a good checkpoint.
    if (absl::Status s = CheckFinite(model.StateDict()); !s.ok()) {
      return absl::AbortedError(absl::StrCat(
          "training diverged: after epoch ", epoch, " the model's ",
          s.message(), "; ", last_good(), ". Lower --lr"));
    }
    if (!options.out_dir.empty() && root) {
      // The row first, then the checkpoint: a kill in between leaves a row
      // that resuming drops (TrimCsv) and writes again, never a gap.
      const bool fresh = !options.resume && epoch == 1;
      absl::StatusOr<std::string> csv_text = AppendCsv(csv, m, fresh);
      if (!csv_text.ok()) return csv_text.status();
      if (absl::Status s = SaveCheckpoint(checkpoint, model, spec.name, epoch,
                                          options.input_size);
          !s.ok()) {
        return s;
      }
      last_good_epoch = epoch;
      // Drawn aside and renamed, so metrics.png is always a whole image.
      const std::string png = options.out_dir + "/metrics.png";
      absl::Status plotted = DrawPlot(*csv_text, png, spec.description);
      if (!plotted.ok()) LOG(WARNING) << "no plot: " << plotted;
    }
  }
  return summary;
}

}  // namespace dive::tools
