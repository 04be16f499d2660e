#include "quant/qparams.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::quant {
namespace {

TEST(ChooseQParams, CoversTheRangeAndZero) {
  QParams q = ChooseQParams(0.0f, 2.55f);
  EXPECT_FLOAT_EQ(q.scale, 0.01f);
  EXPECT_EQ(q.zero_point, 0);
  q = ChooseQParams(-0.51f, 2.04f);
  EXPECT_FLOAT_EQ(q.scale, 0.01f);
  EXPECT_EQ(q.zero_point, 51);
  q = ChooseQParams(1.0f, 2.55f);  // the range is widened to hold 0
  EXPECT_FLOAT_EQ(q.scale, 0.01f);
  EXPECT_EQ(q.zero_point, 0);
  q = ChooseQParams(-2.55f, -1.0f);
  EXPECT_EQ(q.zero_point, 255);
  q = ChooseQParams(0.0f, 0.0f);  // nothing seen: any valid scale
  EXPECT_GT(q.scale, 0);
}

// reduce_range: the same ranges on 0..127.
TEST(ChooseQParams, ReducedRangeMapsTo127) {
  QParams q = ChooseQParams(0.0f, 1.27f, kReducedQuantMax);
  EXPECT_FLOAT_EQ(q.scale, 0.01f);
  EXPECT_EQ(q.zero_point, 0);
  q = ChooseQParams(-0.27f, 1.0f, kReducedQuantMax);
  EXPECT_FLOAT_EQ(q.scale, 0.01f);
  EXPECT_EQ(q.zero_point, 27);
  q = ChooseQParams(-2.55f, -1.0f, kReducedQuantMax);
  EXPECT_EQ(q.zero_point, 127);
  RangeObserver obs(Calibration::kMinMax);
  obs.Observe(Tensor::FromVector({-1.0f, 2.0f}, {2}));
  EXPECT_FLOAT_EQ(obs.Choose(kReducedQuantMax).scale, 3.0f / 127);
  RangeObserver pct(Calibration::kPercentile);
  pct.Observe(Tensor::FromVector({0.0f, 1.0f}, {2}));
  EXPECT_LE(pct.Choose(kReducedQuantMax).zero_point, 127);
}

TEST(QuantizeTest, RoundTripIsWithinHalfAStepAndClampsOutside) {
  const QParams q = ChooseQParams(-1.0f, 3.0f);
  Tensor x = Uniform({1000}, -1.0f, 3.0f);
  const Tensor u8 = Quantize(x, q);
  ASSERT_EQ(u8.dtype(), DType::kUint8);
  const Tensor back = Dequantize(u8, q);
  for (int64_t i = 0; i < x.numel(); ++i) {
    EXPECT_LE(std::fabs(back.data()[i] - x.data()[i]), q.scale / 2 * 1.001f)
        << i;
  }
  const Tensor out = Quantize(Tensor::FromVector({-5, 0, 10}, {3}), q);
  EXPECT_EQ(out.at<uint8_t>({0}), 0);
  EXPECT_EQ(out.at<uint8_t>({1}), q.zero_point);  // 0 is exact
  EXPECT_EQ(out.at<uint8_t>({2}), 255);
}

// ONNX's QuantizeLinear, as ONNX Runtime computes it: the quotient in
// float32, ties to even. Resized images in scale 1/255 put many values on
// a tie (k + 0.5 steps), where a product with the reciprocal in double
// (what Quantize computed before) rounds some of them the other way.
TEST(QuantizeTest, IsOnnxQuantizeLinearTiesIncluded) {
  const QParams q{1.0f / 255, 3};
  std::vector<float> values;
  for (int k = -8; k < 260; ++k) {
    values.push_back((k + 0.5f) / 255);
    values.push_back(static_cast<float>(k) / 255);
  }
  const Tensor x =
      Tensor::FromVector(values, {static_cast<int64_t>(values.size())});
  const Tensor u8 = Quantize(x, q);
  int64_t ties_to_even = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    const float v = std::nearbyint(values[i] / q.scale) + q.zero_point;
    const auto want = static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f));
    EXPECT_EQ(u8.at<uint8_t>({static_cast<int64_t>(i)}), want) << values[i];
    const float quotient = values[i] / q.scale;
    ties_to_even += quotient - std::floor(quotient) == 0.5f;
  }
  EXPECT_GT(ties_to_even, 0);  // the case covers ties
  // Ties go to the even neighbour: 0.5 -> 0, 1.5 -> 2.
  const Tensor t = Quantize(Tensor::FromVector({1.0f, 3.0f}, {2}), {2.0f, 0});
  EXPECT_EQ(t.at<uint8_t>({0}), 0);
  EXPECT_EQ(t.at<uint8_t>({1}), 2);
}

TEST(CheckQParams, NamesTheTensorAndTheProblem) {
  EXPECT_TRUE(CheckQParams({0.1f, 0}, "s", "z").ok());
  EXPECT_TRUE(CheckQParams({0.1f, 255}, "s", "z").ok());
  for (float bad : {0.0f, -0.5f, std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity()}) {
    const absl::Status s = CheckQParams({bad, 3}, "fc.input_scale", "z");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("fc.input_scale: scale"), std::string::npos)
        << s.message();
    EXPECT_NE(s.message().find("must be finite and > 0"), std::string::npos);
  }
  for (int32_t bad : {-1, 256}) {
    const absl::Status s =
        CheckQParams({0.1f, bad}, "s", "fc.input_zero_point");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("fc.input_zero_point: zero point"),
              std::string::npos)
        << s.message();
    EXPECT_NE(s.message().find("outside 0..255"), std::string::npos);
  }
}

TEST(QuantizePerChannel, OneSymmetricScalePerOutputChannel) {
  Generator gen(3);
  Tensor w = gen.Normal({4, 3, 2, 2}, 0, 1);
  // Channel 1 ten times larger, channel 3 all zero.
  for (int64_t i = 12; i < 24; ++i) w.data()[i] *= 10;
  for (int64_t i = 36; i < 48; ++i) w.data()[i] = 0;
  const PerChannelWeights q = QuantizePerChannel(w);
  ASSERT_EQ(q.values.dtype(), DType::kInt8);
  ASSERT_EQ(q.values.shape(), w.shape());
  ASSERT_EQ(q.scales.shape(), Shape({4}));
  for (int64_t o = 0; o < 4; ++o) {
    float max_abs = 0;
    int max_q = 0;
    for (int64_t i = 0; i < 12; ++i) {
      max_abs = std::max(max_abs, std::fabs(w.data()[o * 12 + i]));
      max_q =
          std::max(max_q, std::abs(int{q.values.data<int8_t>()[o * 12 + i]}));
    }
    const float scale = q.scales.data()[o];
    if (max_abs == 0) {
      EXPECT_EQ(scale, 1.0f);
      continue;
    }
    EXPECT_FLOAT_EQ(scale, max_abs / 127);
    EXPECT_EQ(max_q, 127);  // the largest weight uses the whole range
    for (int64_t i = 0; i < 12; ++i) {
      const float back = scale * q.values.data<int8_t>()[o * 12 + i];
      EXPECT_LE(std::fabs(back - w.data()[o * 12 + i]), scale / 2 * 1.001f);
    }
  }
  EXPECT_GT(q.scales.data()[1], 5 * q.scales.data()[0]);
}

TEST(RangeObserver, MinMaxSpansEveryBatch) {
  RangeObserver obs(Calibration::kMinMax);
  obs.Observe(Tensor::FromVector({0.5f, 2.0f}, {2}));
  obs.Observe(Tensor::FromVector({-1.0f, std::nanf("")}, {2}));
  EXPECT_EQ(obs.min(), -1.0f);
  EXPECT_EQ(obs.max(), 2.0f);
  const QParams q = obs.Choose();
  EXPECT_FLOAT_EQ(q.scale, 3.0f / 255);
}

TEST(RangeObserver, PercentileClipsRareOutliers) {
  Generator gen(5);
  RangeObserver minmax(Calibration::kMinMax);
  RangeObserver pct(Calibration::kPercentile);
  for (int b = 0; b < 4; ++b) {
    Tensor x = gen.Uniform({50000}, 0.0f, 1.0f);
    if (b == 2) x.data()[7] = 100.0f;  // one value in 200,000
    minmax.Observe(x);
    pct.Observe(x);
  }
  EXPECT_FLOAT_EQ(minmax.Choose().scale, 100.0f / 255);
  // The histogram's range grew to >= 100 in 2048 bins: the clip is within
  // one bin (< 0.1) above the bulk's maximum, 1.
  const QParams q = pct.Choose();
  EXPECT_EQ(q.zero_point, 0);
  EXPECT_GT(q.scale * 255, 0.99f);
  EXPECT_LT(q.scale * 255, 1.1f);
}

TEST(RangeObserver, PercentileClipsBothSides) {
  Generator gen(6);
  RangeObserver pct(Calibration::kPercentile);
  Tensor x = gen.Uniform({100000}, -2.0f, 1.0f);
  x.data()[0] = -50;
  x.data()[1] = 40;
  pct.Observe(x);
  const QParams q = pct.Choose();
  const float lo = -q.scale * q.zero_point, hi = q.scale * (255 - q.zero_point);
  EXPECT_LT(lo, -1.9f);
  EXPECT_GT(lo, -2.2f);
  EXPECT_GT(hi, 0.9f);
  EXPECT_LT(hi, 1.2f);
}

TEST(ParseCalibration, NamesTheChoices) {
  EXPECT_EQ(*ParseCalibration("minmax"), Calibration::kMinMax);
  EXPECT_EQ(*ParseCalibration("percentile"), Calibration::kPercentile);
  const absl::StatusOr<Calibration> bad = ParseCalibration("mse");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("minmax or percentile"),
            std::string::npos);
}

}  // namespace
}  // namespace dive::quant
