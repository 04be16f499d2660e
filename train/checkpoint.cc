#include "train/checkpoint.h"

#include <sys/stat.h>

#include <csignal>
#include <cstdlib>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "tensor/file_io.h"

namespace dive::train {
namespace {

std::string PathIn(const std::string& dir, const char* name) {
  return absl::StrCat(dir, "/", name);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

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
    if (absl::Status s = ReadMetadataInt(meta, f.key, f.min, f.max, f.value);
        !s.ok()) {
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

}  // namespace dive::train
