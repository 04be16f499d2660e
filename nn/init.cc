#include "nn/init.h"

#include <cmath>

#include "glog/logging.h"
#include "tensor/random.h"

namespace dive::nn {
namespace {

// Copies `values` into `tensor`'s storage (shared with every other handle).
void Assign(const Tensor& tensor, const Tensor& values) {
  Tensor dst = tensor;
  dst.CopyFrom(values);
}

void CheckFloat(const Tensor& tensor, const char* fn) {
  CHECK(tensor.defined()) << fn << ": undefined tensor";
  CHECK(tensor.dtype() == DType::kFloat32)
      << fn << ": expected a float32 tensor, got " << DTypeName(tensor.dtype());
}

float KaimingStd(const Tensor& tensor, float a, FanMode mode) {
  const Fans fans = ComputeFans(tensor.shape());
  const int64_t fan = mode == FanMode::kFanIn ? fans.fan_in : fans.fan_out;
  CHECK_GT(fan, 0) << "Kaiming init of an empty weight " << tensor.shape();
  const float gain = std::sqrt(2.0f / (1.0f + a * a));
  return gain / std::sqrt(static_cast<float>(fan));
}

float XavierStd(const Tensor& tensor, float gain) {
  const Fans fans = ComputeFans(tensor.shape());
  CHECK_GT(fans.fan_in + fans.fan_out, 0)
      << "Xavier init of an empty weight " << tensor.shape();
  return gain *
         std::sqrt(2.0f / static_cast<float>(fans.fan_in + fans.fan_out));
}

}  // namespace

Fans ComputeFans(const Shape& shape) {
  CHECK_GE(shape.rank(), 2) << "fan_in and fan_out need a weight of rank >= 2 "
                            << "([out, in, ...]), got " << shape;
  int64_t receptive = 1;
  for (int i = 2; i < shape.rank(); ++i) receptive *= shape[i];
  return Fans{shape[1] * receptive, shape[0] * receptive};
}

void UniformInit(const Tensor& tensor, float lo, float hi) {
  CheckFloat(tensor, "UniformInit");
  CHECK_LE(lo, hi) << "UniformInit: lo " << lo << " > hi " << hi;
  Assign(tensor, DefaultGenerator().Uniform(tensor.shape(), lo, hi));
}

void NormalInit(const Tensor& tensor, float mean, float stddev) {
  CheckFloat(tensor, "NormalInit");
  CHECK_GE(stddev, 0.0f) << "NormalInit: negative stddev " << stddev;
  Assign(tensor, DefaultGenerator().Normal(tensor.shape(), mean, stddev));
}

void ZerosInit(const Tensor& tensor) { ConstantInit(tensor, 0.0f); }

void ConstantInit(const Tensor& tensor, float value) {
  CheckFloat(tensor, "ConstantInit");
  Tensor dst = tensor;
  dst.Fill(value);
}

void XavierUniform(const Tensor& tensor, float gain) {
  CheckFloat(tensor, "XavierUniform");
  const float bound = std::sqrt(3.0f) * XavierStd(tensor, gain);
  UniformInit(tensor, -bound, bound);
}

void XavierNormal(const Tensor& tensor, float gain) {
  CheckFloat(tensor, "XavierNormal");
  NormalInit(tensor, 0.0f, XavierStd(tensor, gain));
}

void KaimingUniform(const Tensor& tensor, float a, FanMode mode) {
  CheckFloat(tensor, "KaimingUniform");
  const float bound = std::sqrt(3.0f) * KaimingStd(tensor, a, mode);
  UniformInit(tensor, -bound, bound);
}

void KaimingNormal(const Tensor& tensor, float a, FanMode mode) {
  CheckFloat(tensor, "KaimingNormal");
  NormalInit(tensor, 0.0f, KaimingStd(tensor, a, mode));
}

}  // namespace dive::nn
