#include "train/checkpoint.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "tensor/file_io.h"

namespace dive::train {
namespace {

constexpr char kFormat[] = "dive-train-state-1";
constexpr char kOptimizerPrefix[] = "optimizer.";
constexpr char kSettingPrefix[] = "setting.";

std::string PathIn(const std::string& dir, const char* name) {
  return absl::StrCat(dir, "/", name);
}

// Doubles as C99 hex floats ("0x1.8p+1"): exact, so totals resume exactly.
std::string Exact(double v) { return absl::StrFormat("%a", v); }

bool ParseExact(const std::string& text, double* v) {
  char* end = nullptr;
  *v = std::strtod(text.c_str(), &end);
  return !text.empty() && end == text.c_str() + text.size() &&
         std::isfinite(*v);
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
            absl::StrCat("tensor '", name, "' holds ", v[i], " at element ", i,
                         " of ", c.numel()));
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
  if (!file->checksum_verified) return fail("has no dive.crc32 checksum");
  const auto& m = file->metadata;
  if (auto it = m.find("format"); it == m.end() || it->second != kFormat) {
    return fail(absl::StrCat("not a training state (format \"",
                             it == m.end() ? "" : absl::CHexEscape(it->second),
                             "\", expected \"", kFormat, "\")"));
  }
  SavedTrainState s;
  // Each recorded number must be one a run could have written.
  const int64_t kMax = int64_t{1} << 62;
  int64_t crc = 0;
  const struct {
    const char* key;
    int64_t* value;
    int64_t max;
  } ints[] = {{"weights_crc32", &crc, 0xffffffffll},
              {"epoch", &s.position.epoch, kMaxEpochs},
              {"step", &s.position.step, kMax},
              {"global_step", &s.position.global_step, kMax},
              {"correct", &s.totals.correct, kMax},
              {"seen", &s.totals.seen, kMax},
              {"skipped_steps", &s.skipped_steps, kMax}};
  for (const auto& f : ints) {
    auto it = m.find(f.key);
    if (it == m.end() || !absl::SimpleAtoi(it->second, f.value) ||
        *f.value < 0 || *f.value > f.max) {
      return fail(absl::StrCat(
          "metadata ", f.key, " \"",
          it == m.end() ? "" : absl::CHexEscape(it->second.substr(0, 40)),
          "\" is not an integer in [0, ", f.max, "]"));
    }
  }
  s.weights_crc32 = static_cast<uint32_t>(crc);
  for (const auto& [key, value] : {std::pair{"loss_sum", &s.totals.loss_sum},
                                   std::pair{"seconds", &s.totals.seconds}}) {
    auto it = m.find(key);
    if (it == m.end() || !ParseExact(it->second, value) || *value < 0) {
      return fail(absl::StrCat("metadata ", key, " is not a number >= 0"));
    }
  }
  if (s.totals.correct > s.totals.seen) {
    return fail("metadata correct exceeds seen");
  }
  for (const auto& [key, value] : m) {
    if (absl::StartsWith(key, kSettingPrefix)) {
      s.settings[key.substr(sizeof(kSettingPrefix) - 1)] = value;
    }
  }
  for (auto& [key, tensor] : file->tensors) {
    if (!absl::StartsWith(key, kOptimizerPrefix)) {
      return fail(
          absl::StrCat("unexpected tensor '", absl::CHexEscape(key), "'"));
    }
    s.optimizer[key.substr(sizeof(kOptimizerPrefix) - 1)] = tensor;
  }
  if (absl::Status f = CheckFinite(s.optimizer); !f.ok()) {
    return fail(absl::StrCat("optimizer state ", f.message()));
  }
  return s;
}

absl::Status SaveCheckpoint(const std::string& dir, const TrainState& state,
                            const std::string& model_name, int64_t input_size) {
  SafetensorsFile weights;
  weights.tensors = state.model->StateDict();
  weights.metadata["model"] = model_name;
  weights.metadata["epoch"] = absl::StrCat(state.position.epoch);
  weights.metadata["global_step"] = absl::StrCat(state.position.global_step);
  weights.metadata["input_size"] = absl::StrCat(input_size);
  const SerializedSafetensors bytes = SerializeSafetensors(weights);
  // Weights aside and synced, the state into place, then the weights.
  absl::StatusOr<AtomicFileWriter> out =
      AtomicFileWriter::Create(PathIn(dir, kWeightsFile));
  if (!out.ok()) return out.status();
  if (absl::Status s = out->Write(bytes.bytes); !s.ok()) return s;
  if (absl::Status s = out->Sync(); !s.ok()) return s;
  if (absl::Status s = WriteFileAtomically(
          PathIn(dir, kTrainStateFile), EncodeTrainState(state, bytes.crc32));
      !s.ok()) {
    return s;
  }
  return out->Commit();
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
                {"input_size", &c.input_size, 1, kMaxInputSize}};
  for (const auto& f : fields) {
    auto it = meta.find(f.key);
    if (it == meta.end()) continue;
    if (!absl::SimpleAtoi(it->second, f.value) || *f.value < f.min ||
        *f.value > f.max) {
      return absl::DataLossError(
          absl::StrCat("checkpoint ", path, ": metadata ", f.key, " \"",
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

}  // namespace

absl::Status RecoverCheckpoint(const std::string& dir) {
  absl::StatusOr<std::optional<SavedTrainState>> state = ReadState(dir);
  if (!state.ok() || !state->has_value()) return state.status();
  const std::string weights = PathIn(dir, kWeightsFile);
  absl::StatusOr<SafetensorsFile> current =
      LoadSafetensors(weights, /*follow_symlink=*/false);
  if (current.ok() && current->crc32 == (*state)->weights_crc32) {
    return absl::OkStatus();
  }
  const std::string tmp = weights + ".tmp";
  absl::StatusOr<SafetensorsFile> pending =
      LoadSafetensors(tmp, /*follow_symlink=*/false);
  if (!pending.ok() || !pending->checksum_verified ||
      pending->crc32 != (*state)->weights_crc32) {
    return absl::OkStatus();  // ReadRun reports the mismatch
  }
  if (absl::Status s = CheckReplaceable(weights); !s.ok()) return s;
  if (std::rename(tmp.c_str(), weights.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("renaming ", tmp, " to ", weights,
                                            ": ", std::strerror(errno)));
  }
  LOG(INFO) << "completed the checkpoint a killed run was saving: renamed "
            << tmp << " to " << weights;
  return absl::OkStatus();
}

absl::StatusOr<SavedRun> ReadRun(const std::string& dir) {
  const std::string weights = PathIn(dir, kWeightsFile);
  absl::StatusOr<Checkpoint> c = ReadCheckpoint(weights, false);
  if (!c.ok()) return c.status();
  absl::StatusOr<std::optional<SavedTrainState>> state = ReadState(dir);
  if (!state.ok()) return state.status();
  if (state->has_value() && (!c->file.checksum_verified ||
                             c->file.crc32 != (*state)->weights_crc32)) {
    return absl::DataLossError(absl::StrCat(
        PathIn(dir, kTrainStateFile), " belongs with weights of CRC ",
        (*state)->weights_crc32, ", but ", weights, " has CRC ", c->file.crc32,
        ": the pair was changed by hand or damaged; pass --overwrite to "
        "start afresh"));
  }
  if (state->has_value() && (*state)->position.epoch != c->epoch) {
    return absl::DataLossError(absl::StrCat(
        PathIn(dir, kTrainStateFile), " is at epoch ", (*state)->position.epoch,
        " but ", weights, " at epoch ", c->epoch));
  }
  return SavedRun{*std::move(c), *std::move(state)};
}

absl::Status RestoreTrainState(const SavedTrainState& saved,
                               TrainState& state) {
  if (absl::Status s = state.optimizer->LoadStateDict(saved.optimizer);
      !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the training state does not fit: ", s.message()));
  }
  if (state.schedule != nullptr) {
    state.schedule->SetEpoch(static_cast<int>(saved.position.epoch));
  }
  state.position = saved.position;
  state.totals = saved.totals;
  state.skipped_steps = saved.skipped_steps;
  return absl::OkStatus();
}

absl::Status CheckSettings(const std::map<std::string, std::string>& saved,
                           const std::map<std::string, std::string>& current,
                           const std::string& dir) {
  std::vector<std::string> changed;
  for (const auto& [name, then] : saved) {
    auto now = current.find(name);
    const std::string value = now == current.end() ? "" : now->second;
    if (value != then) {
      changed.push_back(absl::StrCat("--", name, "=", value,
                                     " (it was trained with --", name, "=",
                                     absl::CHexEscape(then), ")"));
    }
  }
  if (changed.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      absl::StrJoin(changed, ", "), ": the run in ", dir,
      " would not be the run it continues; resume with the same values, or "
      "start a new run (--overwrite)"));
}

}  // namespace dive::train
