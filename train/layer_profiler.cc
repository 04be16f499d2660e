#include "train/layer_profiler.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nn/activation.h"
#include "nn/flops.h"

namespace dive::train {
namespace {

double SecondsBetween(std::chrono::steady_clock::time_point from,
                      std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// Sets what `layer`'s activation statistic counts, from its module's kind.
void ClassifyUnits(const nn::Module& module, LayerStats& layer) {
  if (dynamic_cast<const nn::ReLU*>(&module) != nullptr) {
    layer.unit_stat = UnitStat::kZero;
  } else if (dynamic_cast<const nn::Sigmoid*>(&module) != nullptr) {
    layer.unit_stat = UnitStat::kSaturated;
    layer.saturated_below = 0.01;
    layer.saturated_above = 0.99;
  } else if (dynamic_cast<const nn::Tanh*>(&module) != nullptr) {
    layer.unit_stat = UnitStat::kSaturated;
    layer.saturated_below = -0.99;
    layer.saturated_above = 0.99;
  }
}

}  // namespace

LayerProfiler::LayerProfiler(nn::Module& model, int64_t stats_every)
    : stats_every_(stats_every) {
  for (const auto& [name, module] : model.NamedModules()) {
    names_.emplace(module, name);
  }
  hooks_ = model.RegisterForwardHooksOnAll(
      [this](nn::Module& m, const autograd::Variable&) {
        PreHook(m);
        return autograd::Variable();
      },
      [this](nn::Module& m, const autograd::Variable& input,
             const autograd::Variable& output) {
        PostHook(m, input, output);
        return autograd::Variable();
      });
}

LayerProfiler::~LayerProfiler() { hooks_.Remove(); }

void LayerProfiler::PreHook(nn::Module& module) {
  if (!module.is_training() || !autograd::GradEnabled()) return;
  if (!in_step_) {
    in_step_ = true;
    step_start_ = Clock::now();
    sampling_ = stats_every_ > 0 && steps_ % stats_every_ == 0;
  }
  const auto [it, added] = index_.emplace(&module, layers_.size());
  if (added) {
    LayerStats layer;
    layer.name = names_.at(&module);
    layer.description = module.Describe();
    layer.depth = static_cast<int>(open_.size());
    ClassifyUnits(module, layer);
    layers_.push_back(std::move(layer));
  }
  Call call;
  call.layer = it->second;
  call.forward_start = Clock::now();
  open_.push_back(call);
}

void LayerProfiler::PostHook(nn::Module& module,
                             const autograd::Variable& input,
                             const autograd::Variable& output) {
  if (!module.is_training() || !autograd::GradEnabled() || open_.empty())
    return;
  Call call = open_.back();
  open_.pop_back();
  call.forward_end = Clock::now();
  call.flops = nn::LayerForwardFlops(module, output.shape());
  calls_.push_back(call);
  LayerStats& layer = layers_[call.layer];
  if (sampling_) Sample(layer, output.data());
  // The hooks below close the call's backward; one left in a graph that
  // outlives its step (never the loop's) finds another step and does nothing.
  const size_t id = calls_.size() - 1;
  const int64_t step = steps_;
  // Leaves keep their hooks across passes: only graph nodes are hooked.
  if (output.requires_grad() && !output.is_leaf()) {
    output.RegisterHook([this, id, step](const Tensor&) {
      if (steps_ == step && id < calls_.size()) {
        calls_[id].backward_start = Clock::now();
        calls_[id].backward_started = true;
      }
      return Tensor();
    });
  }
  if (input.requires_grad() && !input.is_leaf()) {
    input.RegisterHook([this, id, step](const Tensor&) {
      if (steps_ == step && id < calls_.size() && !calls_[id].backward_ended) {
        calls_[id].backward_end = Clock::now();
        calls_[id].backward_ended = true;
      }
      return Tensor();
    });
  }
}

void LayerProfiler::Sample(LayerStats& layer, const Tensor& output) {
  if (output.dtype() != DType::kFloat32 || output.numel() == 0) return;
  const Tensor values = output.Contiguous();
  const float* p = values.data<float>();
  const int64_t n = values.numel();
  double sum = 0, sum_sq = 0;
  int64_t units = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = p[i];
    sum += v;
    sum_sq += v * v;
    switch (layer.unit_stat) {
      case UnitStat::kZero:
        units += v == 0;
        break;
      case UnitStat::kSaturated:
        units += v < layer.saturated_below || v > layer.saturated_above;
        break;
      case UnitStat::kNone:
        break;
    }
  }
  layer.sampled = true;
  layer.mean = sum / n;
  layer.stddev = std::sqrt(std::max(0.0, sum_sq / n - layer.mean * layer.mean));
  layer.unit_fraction = static_cast<double>(units) / n;
}

void LayerProfiler::OnAfterBackward(const TrainState&) {
  backward_end_ = Clock::now();
}

absl::Status LayerProfiler::OnStep(const TrainState&, const StepInfo&) {
  if (!in_step_) return absl::OkStatus();
  const Clock::time_point now = Clock::now();
  for (const Call& call : calls_) {
    LayerStats& layer = layers_[call.layer];
    ++layer.calls;
    layer.forward_seconds +=
        SecondsBetween(call.forward_start, call.forward_end);
    layer.forward_flops += call.flops;
    if (call.backward_started) {
      layer.backward_seconds += SecondsBetween(
          call.backward_start,
          call.backward_ended ? call.backward_end : backward_end_);
    }
  }
  step_seconds_ += SecondsBetween(step_start_, now);
  ++steps_;
  calls_.clear();
  open_.clear();
  in_step_ = false;
  return absl::OkStatus();
}

std::vector<LayerStats> LayerProfiler::Layers() const { return layers_; }

std::string LayerProfiler::Table() const {
  if (steps_ == 0) return "no training steps profiled\n";
  const double step_ms = 1e3 * step_seconds_ / steps_;
  std::string out = absl::StrFormat(
      "Per-layer time over %d training steps, mean per step: %.2f ms\n"
      "%-56s %10s %11s %6s %12s\n",
      steps_, step_ms, "Module", "Forward ms", "Backward ms", "Share",
      "Fwd GFLOP/s");
  double root_ms = 0;
  for (const LayerStats& layer : layers_) {
    const double forward = 1e3 * layer.forward_seconds / steps_;
    const double backward = 1e3 * layer.backward_seconds / steps_;
    if (layer.depth == 0) root_ms += forward + backward;
    std::string label =
        absl::StrCat(std::string(2 * layer.depth, ' '), layer.name,
                     layer.name.empty() ? "" : " ", layer.description);
    if (label.size() > 56) label = label.substr(0, 53) + "...";
    const std::string rate =
        layer.forward_flops > 0 && layer.forward_seconds > 0
            ? absl::StrFormat(" %12.1f", layer.forward_flops /
                                             layer.forward_seconds / 1e9)
            : "";
    absl::StrAppendFormat(&out, "%-56s %10.2f %11.2f %5.1f%%%s\n", label,
                          forward, backward,
                          100 * (forward + backward) / step_ms, rate);
  }
  absl::StrAppendFormat(&out, "%-56s %10s %11s %5.1f%%\n",
                        "(loss, optimizer, observers)", "", "",
                        100 * std::max(0.0, step_ms - root_ms) / step_ms);
  return out;
}

}  // namespace dive::train
