#include "quant/qparams.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dive::quant {

QParams ChooseQParams(float lo, float hi, int32_t quant_max) {
  CHECK(quant_max >= 1 && quant_max <= 255) << "quant_max " << quant_max;
  const double l = std::min(lo, 0.0f), h = std::max(hi, 0.0f);
  if (!(h > l) || !std::isfinite(h - l)) return QParams{};
  QParams q;
  const double top = quant_max;
  q.scale = std::max(static_cast<float>((h - l) / top),
                     std::numeric_limits<float>::min());
  q.zero_point =
      static_cast<int32_t>(std::clamp(std::nearbyint(-l / q.scale), 0.0, top));
  return q;
}

absl::Status CheckQParams(const QParams& q, absl::string_view scale_name,
                          absl::string_view zero_point_name) {
  if (!(std::isfinite(q.scale) && q.scale > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        scale_name, ": scale ", q.scale, " must be finite and > 0"));
  }
  if (q.zero_point < 0 || q.zero_point > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat(zero_point_name, ": zero point ", q.zero_point,
                     " is outside 0..255 (uint8)"));
  }
  return absl::OkStatus();
}

Tensor Quantize(const Tensor& x, const QParams& q) {
  CHECK(x.dtype() == DType::kFloat32)
      << "Quantize of a " << DTypeName(x.dtype());
  const Tensor c = x.Contiguous();
  Tensor out = Tensor::Empty(x.shape(), DType::kUint8);
  const float* in = c.data<float>();
  uint8_t* o = out.data<uint8_t>();
  // As ONNX's QuantizeLinear (and ONNX Runtime's kernel): the quotient in
  // float32, rounded half to even, so that an exported QDQ graph
  // (tools/onnx_export.h) rounds every input as dive does, the ties too
  // (resized images in scale 1/255 have many: a double product with the
  // reciprocal put some on the other side).
  for (int64_t i = 0; i < c.numel(); ++i) {
    // NaN becomes 0 (fmax drops it).
    const float v = std::nearbyint(in[i] / q.scale) + q.zero_point;
    o[i] = static_cast<uint8_t>(std::fmin(std::fmax(v, 0.0f), 255.0f));
  }
  return out;
}

Tensor Dequantize(const Tensor& q_values, const QParams& q) {
  CHECK(q_values.dtype() == DType::kUint8)
      << "Dequantize of a " << DTypeName(q_values.dtype());
  const Tensor c = q_values.Contiguous();
  Tensor out = Tensor::Empty(c.shape());
  const uint8_t* in = c.data<uint8_t>();
  float* o = out.data<float>();
  for (int64_t i = 0; i < c.numel(); ++i) {
    o[i] = q.scale * static_cast<float>(in[i] - q.zero_point);
  }
  return out;
}

PerChannelWeights QuantizePerChannel(const Tensor& w) {
  CHECK(w.dtype() == DType::kFloat32 && w.rank() >= 1 && w.dim(0) > 0)
      << "QuantizePerChannel: expected float32 [OC, ...], got "
      << DTypeName(w.dtype()) << " " << w.shape();
  const Tensor c = w.Contiguous();
  const int64_t oc = c.dim(0), per = c.numel() / oc;
  PerChannelWeights out{Tensor::Empty(c.shape(), DType::kInt8),
                        Tensor::Empty({oc})};
  const float* in = c.data<float>();
  int8_t* q = out.values.data<int8_t>();
  float* scales = out.scales.data<float>();
  for (int64_t o = 0; o < oc; ++o) {
    float max_abs = 0;
    for (int64_t i = 0; i < per; ++i) {
      max_abs = std::max(max_abs, std::fabs(in[o * per + i]));
    }
    scales[o] = max_abs > 0 ? max_abs / 127.0f : 1.0f;
    for (int64_t i = 0; i < per; ++i) {
      q[o * per + i] = static_cast<int8_t>(std::clamp(
          std::nearbyint(in[o * per + i] / scales[o]), -127.0f, 127.0f));
    }
  }
  return out;
}

absl::StatusOr<Calibration> ParseCalibration(absl::string_view name) {
  for (Calibration c : {Calibration::kMinMax, Calibration::kPercentile}) {
    if (name == CalibrationName(c)) return c;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "calibration \"", name, "\": expected minmax or percentile"));
}

const char* CalibrationName(Calibration c) {
  return c == Calibration::kMinMax ? "minmax" : "percentile";
}

RangeObserver::RangeObserver(Calibration method, double percentile)
    : method_(method), percentile_(percentile) {
  CHECK(percentile > 50 && percentile <= 100)
      << "RangeObserver: percentile " << percentile << " not in (50, 100]";
}

void RangeObserver::Histogram::Add(double magnitude) {
  if (magnitude > range) {
    if (range == 0) {
      range = magnitude;  // what was seen so far is all 0, in bin 0
    }
    while (magnitude > range) {
      for (int b = 0; b < kBins / 2; ++b) {
        counts[b] = counts[2 * b] + counts[2 * b + 1];
      }
      std::fill(counts.begin() + kBins / 2, counts.end(), 0);
      range *= 2;
    }
  }
  const int bin =
      range == 0
          ? 0
          : std::min(kBins - 1, static_cast<int>(magnitude / range * kBins));
  ++counts[bin];
}

double RangeObserver::Histogram::Clip(int64_t tail) const {
  int64_t above = 0;
  for (int b = kBins - 1; b >= 0; --b) {
    if (above + counts[b] > tail) return (b + 1) * range / kBins;
    above += counts[b];
  }
  return 0;
}

void RangeObserver::Observe(const Tensor& x) {
  CHECK(x.dtype() == DType::kFloat32)
      << "RangeObserver::Observe of a " << DTypeName(x.dtype());
  const Tensor c = x.Contiguous();
  const float* v = c.data<float>();
  for (int64_t i = 0; i < c.numel(); ++i) {
    if (std::isnan(v[i])) continue;
    min_ = std::min(min_, v[i]);
    max_ = std::max(max_, v[i]);
    ++count_;
    if (method_ == Calibration::kPercentile) {
      if (v[i] >= 0) {
        positive_.Add(v[i]);
      } else {
        negative_.Add(-static_cast<double>(v[i]));
      }
    }
  }
}

QParams RangeObserver::Choose(int32_t quant_max) const {
  if (method_ == Calibration::kMinMax) {
    return ChooseQParams(min_, max_, quant_max);
  }
  const auto tail =
      static_cast<int64_t>(std::floor(count_ * (100.0 - percentile_) / 100.0));
  const double hi = std::min<double>(positive_.Clip(tail), max_);
  const double lo = std::max<double>(-negative_.Clip(tail), min_);
  return ChooseQParams(static_cast<float>(lo), static_cast<float>(hi),
                       quant_max);
}

}  // namespace dive::quant
