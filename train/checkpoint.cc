#include "train/checkpoint.h"

#include <sys/stat.h>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "tensor/cpu.h"
#include "tensor/file_io.h"
#include "tensor/text.h"

namespace dive::train {
namespace {

// Version 2: both checksums, the run's environment; every field required.
constexpr char kFormat[] = "dive-train-state-2";
constexpr char kOptimizerPrefix[] = "optimizer.";
constexpr char kSettingPrefix[] = "setting.";

// The largest count a checkpoint may record (steps, examples).
constexpr int64_t kMaxCount = int64_t{1} << 62;
// The most processes and threads a checkpoint may record.
constexpr int64_t kMaxWorkers = int64_t{1} << 20;

std::string PathIn(const std::string& dir, const char* name) {
  return absl::StrCat(dir, "/", name);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Doubles as C99 hex floats ("0x1.8p+1"): exact, so totals resume exactly.
std::string Exact(double v) { return absl::StrFormat("%a", v); }

bool ParseExact(const std::string& text, double* v) {
  char* end = nullptr;
  *v = std::strtod(text.c_str(), &end);
  return !text.empty() && end == text.c_str() + text.size() &&
         std::isfinite(*v);
}

// A metadata value for messages: escaped, and at most 40 bytes of it.
std::string Quoted(const std::string& value) {
  return absl::StrCat("\"", Printable(value, 40), "\"");
}

// Reads the metadata integer `key` of `m` into `value`; it must be in
// [min, max] (`max_name`, when given, says where max comes from).
// Otherwise DataLoss "metadata <key> "<value>" is not an integer in
// [min, max]".
absl::Status ReadInt(const std::map<std::string, std::string>& m,
                     const char* key, int64_t min, int64_t max, int64_t* value,
                     const char* max_name = nullptr) {
  auto it = m.find(key);
  if (it == m.end()) {
    return absl::DataLossError(absl::StrCat("has no metadata ", key));
  }
  if (!absl::SimpleAtoi(it->second, value) || *value < min || *value > max) {
    return absl::DataLossError(absl::StrCat(
        "metadata ", key, " ", Quoted(it->second), " is not an integer in [",
        min, ", ", max, "]",
        max_name == nullptr ? "" : absl::StrCat(" (at most ", max_name, ")")));
  }
  return absl::OkStatus();
}

// Reads every metadata field of a training state into `s`, each checked
// against those read before it.
absl::Status ReadFields(const std::map<std::string, std::string>& m,
                        SavedTrainState& s) {
  TrainPosition& p = s.position;
  RunEnvironment& env = s.environment;
  absl::Status status;
  // Reads the next field unless one before it failed: the bounds of each
  // may be fields read before it.
  const auto read = [&](const char* key, int64_t min, int64_t max,
                        int64_t* value, const char* max_name) {
    if (status.ok()) status = ReadInt(m, key, min, max, value, max_name);
  };
  int64_t crc = 0;
  read("weights_crc32", 0, 0xffffffffll, &crc, nullptr);
  read("epoch", 0, kMaxEpochs, &p.epoch, nullptr);
  read("steps_per_epoch", 0, kMaxCount, &env.steps_per_epoch, nullptr);
  read("step", 0, env.steps_per_epoch, &p.step, "steps_per_epoch");
  read("global_step", p.step, kMaxCount, &p.global_step, nullptr);
  read("skipped_steps", 0, p.global_step, &s.skipped_steps, "global_step");
  read("seen", 0, kMaxCount, &s.totals.seen, nullptr);
  read("correct", 0, s.totals.seen, &s.totals.correct, "seen");
  read("processes", 1, kMaxWorkers, &env.processes, nullptr);
  read("threads", 1, kMaxWorkers, &env.threads, nullptr);
  if (!status.ok()) return status;
  s.weights_crc32 = static_cast<uint32_t>(crc);
  for (const auto& [key, value] : {std::pair{"loss_sum", &s.totals.loss_sum},
                                   std::pair{"seconds", &s.totals.seconds}}) {
    auto it = m.find(key);
    if (it == m.end()) {
      return absl::DataLossError(absl::StrCat("has no metadata ", key));
    }
    if (!ParseExact(it->second, value) || *value < 0) {
      return absl::DataLossError(absl::StrCat(
          "metadata ", key, " ", Quoted(it->second), " is not a number >= 0"));
    }
  }
  auto kernels = m.find("kernels");
  if (kernels == m.end()) return absl::DataLossError("has no metadata kernels");
  if (!ParseIsa(kernels->second).ok()) {
    return absl::DataLossError(absl::StrCat(
        "metadata kernels ", Quoted(kernels->second),
        " is not a kernel path (generic, avx2, avx512, avx512_bf16, amx)"));
  }
  env.kernels = kernels->second;
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckFinite(const std::map<std::string, Tensor>& tensors) {
  for (const auto& [name, t] : tensors) {
    if (t.dtype() != DType::kFloat32) continue;
    const Tensor c = t.Contiguous();
    const float* v = c.data<float>();
    for (int64_t i = 0; i < c.numel(); ++i) {
      if (!std::isfinite(v[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor '", Printable(name), "' holds ", v[i],
                         " at element ", i, " of ", c.numel()));
      }
    }
  }
  return absl::OkStatus();
}

std::string EncodeTrainState(const TrainState& state, uint32_t weights_crc32) {
  SafetensorsFile file;
  for (auto& [key, tensor] : state.optimizer->StateDict()) {
    file.tensors[kOptimizerPrefix + key] = tensor;
  }
  auto& m = file.metadata;
  const RunEnvironment& env = state.environment;
  m["format"] = kFormat;
  m["weights_crc32"] = absl::StrCat(weights_crc32);
  m["epoch"] = absl::StrCat(state.position.epoch);
  m["step"] = absl::StrCat(state.position.step);
  m["global_step"] = absl::StrCat(state.position.global_step);
  m["loss_sum"] = Exact(state.totals.loss_sum);
  m["correct"] = absl::StrCat(state.totals.correct);
  m["seen"] = absl::StrCat(state.totals.seen);
  m["seconds"] = Exact(state.totals.seconds);
  m["skipped_steps"] = absl::StrCat(state.skipped_steps);
  m["steps_per_epoch"] = absl::StrCat(env.steps_per_epoch);
  m["processes"] = absl::StrCat(env.processes);
  m["threads"] = absl::StrCat(env.threads);
  m["kernels"] = env.kernels;
  for (const auto& [name, value] : state.settings) {
    m[kSettingPrefix + name] = value;
  }
  return SerializeSafetensors(file).bytes;
}

absl::StatusOr<SavedTrainState> DecodeTrainState(absl::string_view bytes,
                                                 absl::string_view source) {
  absl::StatusOr<SafetensorsFile> file = ParseSafetensors(bytes, source);
  if (!file.ok()) return file.status();
  const auto fail = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat(source, ": ", why));
  };
  const auto& m = file->metadata;
  if (auto it = m.find("format"); it == m.end() || it->second != kFormat) {
    return fail(absl::StrCat(
        "not a training state of this version of dive (format ",
        Quoted(it == m.end() ? "" : it->second), ", expected \"", kFormat,
        "\"); continue its run with the dive that wrote it, or start afresh "
        "with --overwrite"));
  }
  if (!file->checksum_verified || !file->header_verified) {
    return fail(
        "has no dive.crc32 and dive.header_crc32 checksums: it cannot be "
        "checked whole");
  }
  SavedTrainState s;
  if (absl::Status f = ReadFields(m, s); !f.ok()) return fail(f.message());
  for (const auto& [key, value] : m) {
    if (absl::StartsWith(key, kSettingPrefix)) {
      s.settings[key.substr(sizeof(kSettingPrefix) - 1)] = value;
    }
  }
  for (auto& [key, tensor] : file->tensors) {
    if (!absl::StartsWith(key, kOptimizerPrefix)) {
      return fail(absl::StrCat("unexpected tensor '", Printable(key), "'"));
    }
    s.optimizer[key.substr(sizeof(kOptimizerPrefix) - 1)] = tensor;
  }
  if (absl::Status f = CheckFinite(s.optimizer); !f.ok()) {
    return fail(absl::StrCat("optimizer state ", f.message()));
  }
  return s;
}

absl::Status CheckGeometry(const SavedTrainState& saved, int64_t examples,
                           int64_t batch_size, absl::string_view source) {
  const auto fail = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat(source, ": ", why));
  };
  // One process takes every batch, the last one partial; several drop it.
  const int64_t fewest = examples / batch_size;
  const int64_t most = fewest + (examples % batch_size != 0);
  const TrainPosition& p = saved.position;
  const int64_t steps = saved.environment.steps_per_epoch;
  const std::string shape =
      absl::StrCat(examples, " training examples in batches of ", batch_size);
  if (steps < fewest || steps > most) {
    return fail(absl::StrCat("metadata steps_per_epoch ", steps,
                             " does not fit this run: its ", shape, " make ",
                             fewest == most
                                 ? absl::StrCat(fewest)
                                 : absl::StrCat(fewest, " or ", most),
                             " batches per epoch"));
  }
  const int64_t before = p.global_step - p.step;  // the complete epochs'
  if (before < p.epoch * fewest || before > p.epoch * most) {
    return fail(absl::StrCat(
        "metadata global_step ", p.global_step, " does not follow epoch ",
        p.epoch, " and step ", p.step, ": ", p.epoch, " epochs of ", fewest,
        fewest == most ? "" : absl::StrCat(" to ", most), " batches and then ",
        p.step, " make ", p.epoch * fewest + p.step,
        fewest == most ? "" : absl::StrCat(" to ", p.epoch * most + p.step)));
  }
  // The examples `step` batches hold (not step * batch_size, which
  // overflows for a huge batch size).
  const int64_t could = p.step > fewest ? examples : p.step * batch_size;
  if (saved.totals.seen > could) {
    return fail(absl::StrCat("metadata seen ", saved.totals.seen,
                             " exceeds the ", could, " examples that ", p.step,
                             " steps over ", shape, " can see"));
  }
  return absl::OkStatus();
}

namespace {

// Tests only (train/kill_during_save_test.cc): DIVE_TEST_STOP_MID_COMMIT=N
// stops this process (SIGSTOP) in its N-th save, after the state commits and
// before the weights are published, so that a test can kill it exactly
// there.
void MaybeStopMidCommitForTesting() {
  static const int64_t stop_at = [] {
    const char* v = std::getenv("DIVE_TEST_STOP_MID_COMMIT");
    int64_t n = 0;
    return v != nullptr && absl::SimpleAtoi(v, &n) ? n : 0;
  }();
  static int64_t saves = 0;
  if (stop_at > 0 && ++saves == stop_at) std::raise(SIGSTOP);
}

}  // namespace

absl::Status SaveCheckpoint(const std::string& dir, const TrainState& state,
                            const std::string& model_name, int64_t input_size) {
  SafetensorsFile weights;
  weights.tensors = state.model->StateDict();
  weights.metadata["model"] = model_name;
  weights.metadata["epoch"] = absl::StrCat(state.position.epoch);
  weights.metadata["global_step"] = absl::StrCat(state.position.global_step);
  weights.metadata["input_size"] = absl::StrCat(input_size);
  const SerializedSafetensors bytes = SerializeSafetensors(weights);
  // The weights whole beside the published ones; the commit: the state that
  // names them; then the publishing rename.
  if (absl::Status s =
          WriteFileAtomically(PathIn(dir, kPendingWeightsFile), bytes.bytes);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = WriteFileAtomically(
          PathIn(dir, kTrainStateFile), EncodeTrainState(state, bytes.crc32));
      !s.ok()) {
    return s;
  }
  MaybeStopMidCommitForTesting();
  return ReplaceFile(PathIn(dir, kPendingWeightsFile),
                     PathIn(dir, kWeightsFile));
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path,
                                          bool follow_symlink) {
  absl::StatusOr<SafetensorsFile> file = LoadSafetensors(path, follow_symlink);
  if (!file.ok()) return file.status();
  Checkpoint c;
  c.file = *std::move(file);
  const auto& meta = c.file.metadata;
  const struct {
    const char* key;
    int64_t* value;
    int64_t min, max;
  } fields[] = {{"epoch", &c.epoch, 0, kMaxEpochs},
                {"input_size", &c.input_size, 1, kMaxInputSize},
                {"global_step", &c.global_step, 0, kMaxCount}};
  for (const auto& f : fields) {
    if (meta.count(f.key) == 0) continue;
    if (absl::Status s = ReadInt(meta, f.key, f.min, f.max, f.value); !s.ok()) {
      return absl::DataLossError(
          absl::StrCat("checkpoint ", path, ": ", s.message()));
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
    return absl::DataLossError(
        absl::StrCat("checkpoint ", path, ": ", s.message(),
                     "; these weights come from a diverged run"));
  }
  return c;
}

absl::Status LoadCheckpoint(const std::string& path, nn::Module& model,
                            int64_t* epoch) {
  absl::StatusOr<Checkpoint> c = ReadCheckpoint(path, /*follow_symlink=*/false);
  if (!c.ok()) return c.status();
  if (absl::Status s = model.LoadStateDict(c->file.tensors); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint ", path, " does not fit the model: ", s.message()));
  }
  if (epoch != nullptr) *epoch = c->epoch;
  return absl::OkStatus();
}

namespace {

// The state file of `dir`, or nullopt when there is none.
absl::StatusOr<std::optional<SavedTrainState>> ReadState(
    const std::string& dir) {
  const std::string path = PathIn(dir, kTrainStateFile);
  absl::StatusOr<std::string> bytes = ReadRegularFile(
      path, "training state", kMaxSafetensorsBytes, /*follow_symlink=*/false);
  if (absl::IsNotFound(bytes.status())) return std::nullopt;
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<SavedTrainState> state = DecodeTrainState(*bytes, path);
  if (!state.ok()) return state.status();
  return *std::move(state);
}

// True when `weights` read and are the ones `state` names.
bool Named(const absl::StatusOr<Checkpoint>& weights,
           const SavedTrainState& state) {
  return weights.ok() && weights->file.checksum_verified &&
         weights->file.crc32 == state.weights_crc32;
}

// What `weights` (read from `path`) are, for the message of a pair that
// does not match: "<path> has CRC <crc>", "<path> is absent", ...
std::string WhatIs(const std::string& path,
                   const absl::StatusOr<Checkpoint>& weights) {
  if (absl::IsNotFound(weights.status()))
    return absl::StrCat(path, " is absent");
  if (!weights.ok()) return std::string(weights.status().message());
  if (!weights->file.checksum_verified) {
    return absl::StrCat(path, " has no checksum");
  }
  return absl::StrCat(path, " has CRC ", weights->file.crc32);
}

// The weights that `state` names in `dir`: model.safetensors, else the
// pending file of a save cut short (`pending` set).
absl::StatusOr<Checkpoint> ReadNamedWeights(const std::string& dir,
                                            const SavedTrainState& state,
                                            bool* pending) {
  const std::string path = PathIn(dir, kWeightsFile);
  absl::StatusOr<Checkpoint> published = ReadCheckpoint(path, false);
  *pending = false;
  if (Named(published, state)) return published;
  const std::string next_path = PathIn(dir, kPendingWeightsFile);
  absl::StatusOr<Checkpoint> next = Exists(next_path)
                                        ? ReadCheckpoint(next_path, false)
                                        : absl::NotFoundError(next_path);
  if (Named(next, state)) {
    *pending = true;
    return next;
  }
  // A damaged weights file says what is wrong with it.
  if (!published.ok() && !absl::IsNotFound(published.status())) {
    return published.status();
  }
  return absl::DataLossError(absl::StrCat(
      PathIn(dir, kTrainStateFile), " belongs with weights of CRC ",
      state.weights_crc32, ", but ", WhatIs(path, published), " and ",
      WhatIs(next_path, next),
      ": the pair was changed by hand or damaged; pass --overwrite to start "
      "afresh"));
}

}  // namespace

absl::StatusOr<SavedRun> ReadRun(const std::string& dir) {
  absl::StatusOr<std::optional<SavedTrainState>> state = ReadState(dir);
  if (!state.ok()) return state.status();
  SavedRun run;
  if (!state->has_value()) {  // from before train_state files, or PyTorch
    absl::StatusOr<Checkpoint> c = ReadCheckpoint(PathIn(dir, kWeightsFile),
                                                  /*follow_symlink=*/false);
    if (!c.ok()) return c.status();
    run.weights = *std::move(c);
    return run;
  }
  const SavedTrainState& s = **state;
  absl::StatusOr<Checkpoint> c = ReadNamedWeights(dir, s, &run.pending);
  if (!c.ok()) return c.status();
  const std::string weights =
      PathIn(dir, run.pending ? kPendingWeightsFile : kWeightsFile);
  const auto disagree = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat(PathIn(dir, kTrainStateFile),
                                            " and ", weights, ": ", why));
  };
  if (!c->file.header_verified) {
    return disagree("the weights have no header checksum");
  }
  if (s.position.epoch != c->epoch) {
    return disagree(absl::StrCat("the state is at epoch ", s.position.epoch,
                                 " but the weights at epoch ", c->epoch));
  }
  if (s.position.global_step != c->global_step) {
    return disagree(
        absl::StrCat("the state is at global_step ", s.position.global_step,
                     " but the weights at global_step ", c->global_step));
  }
  run.weights = *std::move(c);
  run.state = *std::move(*state);
  return run;
}

absl::Status PublishPendingWeights(const std::string& dir) {
  const std::string from = PathIn(dir, kPendingWeightsFile),
                    to = PathIn(dir, kWeightsFile);
  if (absl::Status s = ReplaceFile(from, to); !s.ok()) return s;
  LOG(INFO) << "completed the checkpoint a killed run was saving: renamed "
            << from << " to " << to;
  return absl::OkStatus();
}

std::string DescribeCheckpoint(const std::string& dir) {
  if (!Exists(PathIn(dir, kWeightsFile)) &&
      !Exists(PathIn(dir, kTrainStateFile))) {
    return "";
  }
  absl::StatusOr<SavedRun> run = ReadRun(dir);
  if (!run.ok()) {
    return absl::StrCat("a checkpoint that cannot be resumed (",
                        run.status().message(), ")");
  }
  if (!run->state) {
    return absl::StrCat("the weights of epoch ", run->weights.epoch,
                        " without a training state");
  }
  const TrainPosition& p = run->state->position;
  return absl::StrCat(
      p.step == 0 ? absl::StrCat("a checkpoint after epoch ", p.epoch)
                  : absl::StrCat("a checkpoint at epoch ", p.epoch + 1,
                                 " step ", p.step),
      run->pending
          ? absl::StrCat(", whose weights a save cut short left in ",
                         kPendingWeightsFile, " (--resume completes that save)")
          : "");
}

absl::Status RestoreTrainState(const SavedTrainState& saved,
                               TrainState& state) {
  if (absl::Status s = state.optimizer->LoadStateDict(saved.optimizer);
      !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the training state does not fit: ", s.message()));
  }
  state.position = saved.position;
  state.totals = saved.totals;
  state.skipped_steps = saved.skipped_steps;
  return absl::OkStatus();
}

absl::Status CheckSettings(const std::map<std::string, std::string>& saved,
                           const std::map<std::string, std::string>& current,
                           const std::string& dir) {
  for (const auto& [name, now] : current) {
    if (saved.count(name) == 0) {
      return absl::DataLossError(absl::StrCat(
          PathIn(dir, kTrainStateFile), " records no ", kSettingPrefix, name,
          ", so --", name, "=", now,
          " cannot be checked against the run it continues: the file was "
          "edited or damaged; pass --overwrite to start afresh"));
    }
  }
  std::vector<std::string> changed;
  for (const auto& [name, then] : saved) {
    auto now = current.find(name);
    const std::string value = now == current.end() ? "" : now->second;
    if (value != then) {
      changed.push_back(absl::StrCat("--", name, "=", value,
                                     " (it was trained with --", name, "=",
                                     Printable(then), ")"));
    }
  }
  if (changed.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      absl::StrJoin(changed, ", "), ": the run in ", dir,
      " would not be the run it continues; resume with the same values, or "
      "start a new run (--overwrite)"));
}

std::string ExactnessWarning(const RunEnvironment& saved,
                             const RunEnvironment& now) {
  std::vector<std::string> changed;
  const auto compare = [&](const char* what, const std::string& then,
                           const std::string& value) {
    if (value != then) {
      changed.push_back(
          absl::StrCat(what, " ", value, " (it was trained with ", then, ")"));
    }
  };
  compare("processes", absl::StrCat(saved.processes),
          absl::StrCat(now.processes));
  compare("threads", absl::StrCat(saved.threads), absl::StrCat(now.threads));
  compare("kernels", saved.kernels, now.kernels);
  if (changed.empty()) return "";
  return absl::StrCat(
      "resuming with ", absl::StrJoin(changed, ", "),
      ": the run goes on, but its weights will not be bit-identical to those "
      "of an uninterrupted run (its sums are taken in another order)");
}

}  // namespace dive::train
