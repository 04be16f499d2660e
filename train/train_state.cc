#include "train/train_state.h"

#include <cmath>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tensor/cpu.h"
#include "tensor/safetensors.h"
#include "tensor/text.h"

namespace dive::train {
namespace {

// Version 2: both checksums, the run's environment; every field required.
constexpr char kFormat[] = "dive-train-state-2";
constexpr char kOptimizerPrefix[] = "optimizer.";
constexpr char kSettingPrefix[] = "setting.";

// The most processes and threads a checkpoint may record.
constexpr int64_t kMaxWorkers = int64_t{1} << 20;

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

}  // namespace

absl::Status ReadMetadataInt(const std::map<std::string, std::string>& m,
                             const char* key, int64_t min, int64_t max,
                             int64_t* value, const char* max_name) {
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

namespace {

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
    if (status.ok()) {
      status = ReadMetadataInt(m, key, min, max, value, max_name);
    }
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
          dir, "/", kTrainStateFile, " records no ", kSettingPrefix, name,
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
  compare("threads", absl::StrCat(saved.threads), absl::StrCat(now.threads));
  compare("kernels", saved.kernels, now.kernels);
  if (changed.empty()) return "";
  return absl::StrCat(
      "resuming with ", absl::StrJoin(changed, ", "),
      ": the run goes on, but its weights will not be bit-identical to those "
      "of an uninterrupted run (its sums are taken in another order)");
}

std::string RankCountChange(const RunEnvironment& saved,
                            const RunEnvironment& now, int64_t batch_size,
                            bool sync_batch_norm) {
  if (saved.processes == now.processes) return "";
  const auto ranks = [](int64_t n) {
    return absl::StrCat(n, n == 1 ? " process" : " processes");
  };
  std::string epochs;
  if (saved.steps_per_epoch != now.steps_per_epoch) {
    epochs = absl::StrCat(
        "; each epoch now has ", now.steps_per_epoch, " batches, not ",
        saved.steps_per_epoch,
        " (one process takes its last partial batch, several drop it)");
  }
  return absl::StrCat(
      "the rank count changed from ", saved.processes, " to ", now.processes,
      " (the checkpoint's run trained on ", ranks(saved.processes),
      ", this one on ", ranks(now.processes),
      "): the global batch stays --batch_size=", batch_size,
      " (so the learning rate and its schedule still fit), now ",
      batch_size / now.processes, " examples per rank instead of ",
      batch_size / saved.processes,
      "; each step still takes the same examples of the epoch's shuffled "
      "order, but split over the ranks otherwise, so the data order each "
      "rank sees and the batch split are no longer the uninterrupted run's (",
      sync_batch_norm ? "" : "nor are BatchNorm's per-rank statistics; ",
      "dropout masks and the order of the gradient sums differ too): the run "
      "goes on, but its weights will not be bit-identical to those of an "
      "uninterrupted run",
      epochs);
}

}  // namespace dive::train