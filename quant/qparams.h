// File: quant/qparams.h
// -----------------------------------------------------------------------------
//
// The numbers of int8 inference (quant/quantized_model.h): how a float
// tensor maps to uint8 activations or int8 weights, and calibration, which
// picks the activations' range from the values a model sees.
//
//   * Activations: per tensor, asymmetric uint8 (PyTorch's quint8, ONNX's
//     QuantizeLinear): q = clamp(round_half_even(x / scale) + zero_point,
//     0, 255), x ~ scale * (q - zero_point). The range always holds 0, so
//     that 0 (ReLU's floor, convolution padding) is exact. With
//     reduce_range (PyTorch's, for x86 CPUs without VNNI) the range is
//     mapped to 0..127 instead (kReducedQuantMax), one bit coarser, so that
//     the int8 kernels of AVX2-only CPUs can multiply on VPMADDUBSW
//     (tensor/qgemm.h's avx2_u7); quant/quantized_model.h then clamps
//     every activation it quantizes or requantizes to 0..127.
//   * Weights: per output channel, symmetric int8 in [-127, 127] with zero
//     point 0: scale[o] = max |w[o, ...]| / 127.
//   * Calibration: a RangeObserver sees every batch of one tensor and then
//     chooses its QParams: the minimum and maximum seen (kMinMax), or the
//     range that clips the `percentile` of the values farthest out on each
//     side (kPercentile; a histogram of 2048 bins per sign whose range
//     doubles, merging bins pairwise, when a larger value comes), which
//     trades a few clipped outliers for a finer step everywhere else.
//
// Example:
//
//   dive::quant::RangeObserver obs(dive::quant::Calibration::kPercentile);
//   for (const dive::Tensor& batch : activations) obs.Observe(batch);
//   dive::quant::QParams q = obs.Choose();
//   dive::Tensor u8 = dive::quant::Quantize(x, q);        // uint8
//   dive::Tensor back = dive::quant::Dequantize(u8, q);   // float32
//   dive::quant::PerChannelWeights w = dive::quant::QuantizePerChannel(conv_w);

#ifndef QUANT_QPARAMS_H_
#define QUANT_QPARAMS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tensor/tensor.h"

namespace dive::quant {

// A uint8 tensor's scale and zero point.
struct QParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// The largest quantized activation of reduce_range's calibration.
inline constexpr int32_t kReducedQuantMax = 127;

// The QParams of [min(lo, 0), max(hi, 0)]: scale = (hi - lo) / quant_max (1
// for an empty range) and zero_point = round(-lo / scale) in 0..quant_max.
// quant_max is 255, or kReducedQuantMax for reduce_range.
QParams ChooseQParams(float lo, float hi, int32_t quant_max = 255);

// OK when scale is finite and > 0 and zero_point in 0..255, else
// InvalidArgument naming the tensor (`scale_name` or `zero_point_name`) and
// the value.
absl::Status CheckQParams(const QParams& q, absl::string_view scale_name,
                          absl::string_view zero_point_name);

// x (float32, any shape) as uint8 with `q`, and back. Quantize is ONNX's
// QuantizeLinear: clamp(round_half_even(x / scale) + zero_point, 0, 255),
// the quotient in float32.
Tensor Quantize(const Tensor& x, const QParams& q);
Tensor Dequantize(const Tensor& q_values, const QParams& q);

// Symmetric int8 weights, one scale per output channel (dimension 0).
struct PerChannelWeights {
  Tensor values;  // int8, w's shape
  Tensor scales;  // float32 [OC]
};
// w float32 [OC, ...]. An all-zero channel gets scale 1.
PerChannelWeights QuantizePerChannel(const Tensor& w);

enum class Calibration { kMinMax, kPercentile };

// "minmax" or "percentile"; InvalidArgument naming the choices otherwise.
absl::StatusOr<Calibration> ParseCalibration(absl::string_view name);
const char* CalibrationName(Calibration c);

// The default percentile of kPercentile: one value in 10,000 clipped on
// each side.
inline constexpr double kDefaultPercentile = 99.99;

class RangeObserver {
 public:
  explicit RangeObserver(Calibration method,
                         double percentile = kDefaultPercentile);

  // Records the values of x (float32, any shape; NaNs are skipped).
  void Observe(const Tensor& x);
  // The QParams of the range chosen from everything observed (ChooseQParams
  // of [0, 0] when nothing was), mapped to 0..quant_max.
  QParams Choose(int32_t quant_max = 255) const;
  float min() const { return min_; }
  float max() const { return max_; }

 private:
  static constexpr int kBins = 2048;
  // Magnitudes of one sign: bins of width range / kBins over [0, range].
  struct Histogram {
    double range = 0;
    std::vector<int64_t> counts = std::vector<int64_t>(kBins, 0);
    void Add(double magnitude);
    // The smallest bin edge with at most `tail` values above it.
    double Clip(int64_t tail) const;
  };
  Calibration method_;
  double percentile_;
  float min_ = 0, max_ = 0;
  int64_t count_ = 0;
  Histogram positive_, negative_;
};

}  // namespace dive::quant

#endif  // QUANT_QPARAMS_H_
