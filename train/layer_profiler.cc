#include "train/layer_profiler.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nn/activation.h"
#include "nn/flops.h"
#include "tensor/cpu.h"
#include "tensor/peak/peak.h"

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

Roofline MeasureRoofline(MatmulPrecision precision, int threads) {
  Roofline r;
  const bool bf16 =
      precision == MatmulPrecision::kBfloat16 && DetectedCpu().avx512_bf16;
  r.peak_kind = bf16 ? "vdpbf16ps" : "fma";
  r.threads = threads;
  r.peak_flops =
      MeasurePeakFlops(bf16 ? PeakBf16DotLoop : PeakFmaLoop, threads);
  r.bandwidth = MeasureTriadBandwidth(int64_t{64} << 20, threads);
  r.cpu = DetectedCpu().brand;
  return r;
}

LayerProfiler::LayerProfiler(nn::Module& model, int64_t stats_every)
    : stats_every_(stats_every) {
  previous_observer_ = autograd::SetBackwardObserver(this);
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

LayerProfiler::~LayerProfiler() {
  hooks_.Remove();
  autograd::SetBackwardObserver(previous_observer_);
}

void LayerProfiler::PreHook(nn::Module& module) {
  if (!module.is_training() || !autograd::GradEnabled()) return;
  if (!in_step_) {
    in_step_ = true;
    if (steps_ == 0) {
      precision_ = GetMatmulPrecision();
      threads_ = GetNumThreads();
    }
    step_start_ = Clock::now();
    sampling_ = stats_every_ > 0 && steps_ % stats_every_ == 0;
  }
  const auto [it, added] = index_.emplace(&module, layers_.size());
  if (added) {
    LayerStats layer;
    layer.name = names_.at(&module);
    layer.description = module.Describe();
    layer.depth = static_cast<int>(open_.size());
    layer.parent = open_.empty() ? -1 : static_cast<int>(open_.back().layer);
    ClassifyUnits(module, layer);
    layers_.push_back(std::move(layer));
    own_.emplace_back();
  }
  Call call;
  call.layer = it->second;
  // The nodes this forward creates are the module's (its submodules' tag
  // theirs): the backward observer charges their execution to it.
  call.caller_tag = autograd::SetNodeTag(&module);
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
  autograd::SetNodeTag(call.caller_tag);
  calls_.push_back(call);
  LayerStats& layer = layers_[call.layer];
  if (sampling_) Sample(layer, output.data());
  const nn::LayerCost cost = nn::LayerCostOf(
      module, input.shape(), output.shape(), input.requires_grad(),
      static_cast<int64_t>(DTypeSize(output.data().dtype())));
  Own& own = own_[call.layer];
  own.forward_flops += cost.forward_flops;
  own.backward_flops += cost.backward_flops;
  own.forward_bytes += cost.forward_bytes;
  own.backward_bytes += cost.backward_bytes;
}

void LayerProfiler::BeforeNode(const autograd::GradNode&) {
  node_start_ = Clock::now();
}

void LayerProfiler::AfterNode(const autograd::GradNode& node) {
  if (!in_step_ || node.tag == nullptr) return;
  const auto it = index_.find(static_cast<const nn::Module*>(node.tag));
  if (it == index_.end()) return;  // a module of another model
  Own& own = own_[it->second];
  own.backward_seconds += SecondsBetween(node_start_, Clock::now());
  ++own.backward_nodes;
}

void LayerProfiler::Sample(LayerStats& layer, const Tensor& output) {
  if (output.numel() == 0) return;
  // Activations stored in bf16 (a convolution feeding another, under
  // --precision=bf16) are sampled as their float32 values.
  Tensor values;
  if (output.dtype() == DType::kFloat32) {
    values = output.Contiguous();
  } else if (output.dtype() == DType::kBfloat16) {
    values = output.To(DType::kFloat32);
  } else {
    return;
  }
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

absl::Status LayerProfiler::OnStep(const TrainState&, const StepInfo&) {
  if (!in_step_) return absl::OkStatus();
  const Clock::time_point now = Clock::now();
  for (const Call& call : calls_) {
    LayerStats& layer = layers_[call.layer];
    ++layer.calls;
    layer.forward_seconds +=
        SecondsBetween(call.forward_start, call.forward_end);
  }
  // Each layer's own numbers, then its submodules' added bottom-up (a
  // layer's first call comes after its parent's, so children have the
  // higher indices).
  for (size_t i = layers_.size(); i-- > 0;) {
    LayerStats& layer = layers_[i];
    const Own& own = own_[i];
    layer.backward_nodes += own.backward_nodes;
    if (layer.parent >= 0) {
      Own& parent = own_[layer.parent];
      parent.backward_seconds += own.backward_seconds;
      parent.forward_flops += own.forward_flops;
      parent.backward_flops += own.backward_flops;
      parent.forward_bytes += own.forward_bytes;
      parent.backward_bytes += own.backward_bytes;
    }
    layer.backward_seconds += own.backward_seconds;
    layer.forward_flops += own.forward_flops;
    layer.backward_flops += own.backward_flops;
    layer.forward_bytes += own.forward_bytes;
    layer.backward_bytes += own.backward_bytes;
  }
  own_.assign(layers_.size(), Own());
  step_seconds_ += SecondsBetween(step_start_, now);
  ++steps_;
  calls_.clear();
  open_.clear();
  in_step_ = false;
  return absl::OkStatus();
}

const Roofline& LayerProfiler::roofline() const {
  if (!roofline_.has_value()) roofline_ = MeasureRoofline(precision_, threads_);
  return *roofline_;
}

std::vector<LayerStats> LayerProfiler::Layers() const { return layers_; }

std::string LayerProfiler::Table() const {
  if (steps_ == 0) return "no training steps profiled\n";
  const Roofline& roof = roofline();
  const double step_ms = 1e3 * step_seconds_ / steps_;
  std::string out = absl::StrFormat(
      "Per-layer time over %d training steps, mean per step: %.2f ms\n"
      "Roofline of %s: peak %.1f GFLOP/s (%s, %d threads), memory %.1f "
      "GB/s (triad), ridge %.1f FLOP/byte\n"
      "%-50s %7s %7s %6s %8s %8s %6s %6s %8s %7s %7s\n",
      steps_, step_ms, roof.cpu.empty() ? "this CPU" : roof.cpu,
      roof.peak_flops / 1e9, roof.peak_kind, roof.threads, roof.bandwidth / 1e9,
      roof.ridge(), "Module", "Fwd ms", "Bwd ms", "Share", "Fwd GF/s",
      "Bwd GF/s", "%peak", "%roof", "MB/step", "FLOP/B", "Bound");
  double root_ms = 0;
  for (const LayerStats& layer : layers_) {
    const double forward = 1e3 * layer.forward_seconds / steps_;
    const double backward = 1e3 * layer.backward_seconds / steps_;
    if (layer.depth == 0) root_ms += forward + backward;
    std::string label =
        absl::StrCat(std::string(2 * layer.depth, ' '), layer.name,
                     layer.name.empty() ? "" : " ", layer.description);
    if (label.size() > 50) label = label.substr(0, 47) + "...";
    absl::StrAppendFormat(&out, "%-50s %7.2f %7.2f %5.1f%%", label, forward,
                          backward, 100 * (forward + backward) / step_ms);
    const LayerRoofline r = RooflineOf(layer, roof);
    auto rate = [](int64_t flops, double seconds) {
      return flops > 0 && seconds > 0
                 ? absl::StrFormat(" %8.1f", flops / seconds / 1e9)
                 : absl::StrFormat(" %8s", "");
    };
    absl::StrAppend(&out, rate(layer.forward_flops, layer.forward_seconds),
                    rate(layer.backward_flops, layer.backward_seconds));
    if (r.bytes > 0) {
      absl::StrAppendFormat(&out, " %5.1f%% %5.1f%% %8.2f %7.2f %7s",
                            100 * r.fraction_of_peak, 100 * r.fraction_of_roof,
                            r.bytes / steps_ / 1e6, r.intensity,
                            r.compute_bound ? "compute" : "memory");
    }
    // Trailing blanks of the rows without numbers.
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  }
  absl::StrAppendFormat(&out, "%-50s %7s %7s %5.1f%%\n",
                        "(loss, optimizer, observers)", "", "",
                        100 * std::max(0.0, step_ms - root_ms) / step_ms);
  out +=
      "GF/s: GFLOP/s. %peak: the layer's forward and backward FLOP/s over the "
      "peak;\n"
      "%roof: over its roof, min(peak, FLOP/B x memory bandwidth). MB/step: "
      "the\n"
      "compulsory bytes its forward and backward move (nn/flops.h). FLOP/B "
      "below\n"
      "the ridge: memory-bound, no kernel reaches the peak; above: "
      "compute-bound.\n";
  return out;
}

LayerRoofline RooflineOf(const LayerStats& layer, const Roofline& roof) {
  LayerRoofline r;
  const int64_t flops = layer.forward_flops + layer.backward_flops;
  r.bytes = layer.forward_bytes + layer.backward_bytes;
  const double seconds = layer.forward_seconds + layer.backward_seconds;
  if (r.bytes <= 0) return r;
  r.intensity = static_cast<double>(flops) / r.bytes;
  r.compute_bound = r.intensity >= roof.ridge();
  const double achieved = seconds > 0 ? flops / seconds : 0;
  const double ceiling =
      std::min(roof.peak_flops, r.intensity * roof.bandwidth);
  r.fraction_of_peak = roof.peak_flops > 0 ? achieved / roof.peak_flops : 0;
  r.fraction_of_roof = ceiling > 0 ? achieved / ceiling : 0;
  return r;
}

}  // namespace dive::train
