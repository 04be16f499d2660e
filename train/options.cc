#include "train/options.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "tensor/text.h"
#include "train/checkpoint.h"
#include "train/cli.h"

namespace dive::train {
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
  return CheckPathFlag("out", o.out_dir);
}

std::map<std::string, std::string> ResumeSettings(const TrainOptions& o) {
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

}  // namespace dive::train
