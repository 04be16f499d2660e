// File: nn/init.h
// -----------------------------------------------------------------------------
//
// Weight initialization schemes, as in PyTorch's `torch.nn.init`. Each
// function overwrites the elements of a float32 tensor in place, drawing from
// `dive::DefaultGenerator()`, so `dive::ManualSeed` makes initialization
// reproducible.
//
// A `Tensor` is a handle: the functions take `const Tensor&` and write into
// its storage, so a parameter can be passed as `layer.weight().data()`.
//
// Fans follow PyTorch: a Linear weight [out, in] has fan_in = in and
// fan_out = out; a Conv2d weight [OC, C, KH, KW] has fan_in = C * KH * KW and
// fan_out = OC * KH * KW.
//
// Example:
//
//   dive::ManualSeed(0);
//   nn::Linear fc(784, 256);
//   nn::XavierUniform(fc.weight().data());    // U(-b, b), b = sqrt(6 / 1040)
//   nn::ZerosInit(fc.bias().data());
//
//   nn::Conv2d conv(3, 64, 3);
//   nn::KaimingNormal(conv.weight().data());  // N(0, 2 / 27)

#ifndef NN_INIT_H_
#define NN_INIT_H_

#include <cstdint>

#include "tensor/shape.h"
#include "tensor/tensor.h"

namespace dive::nn {

// Fans
//
// The number of inputs and outputs that each weight connects.
struct Fans {
  int64_t fan_in;
  int64_t fan_out;
};

// ComputeFans()
//
// The fans of a weight of `shape` (rank >= 2): [out, in] or
// [out, in, k1, k2, ...] with the receptive field k1 * k2 * ... multiplying
// both. CHECK-fails naming the shape for rank < 2.
Fans ComputeFans(const Shape& shape);

// Which fan Kaiming initialization preserves the variance for: kFanIn keeps
// the forward activations' variance, kFanOut the backward gradients'.
enum class FanMode { kFanIn, kFanOut };

// UniformInit()
//
// Fills `tensor` with draws from U(lo, hi).
void UniformInit(const Tensor& tensor, float lo, float hi);

// NormalInit()
//
// Fills `tensor` with draws from N(mean, stddev^2).
void NormalInit(const Tensor& tensor, float mean, float stddev);

// ZerosInit()
//
// Fills `tensor` with 0.
void ZerosInit(const Tensor& tensor);

// ConstantInit()
//
// Fills `tensor` with `value`.
void ConstantInit(const Tensor& tensor, float value);

// XavierUniform()
//
// Glorot & Bengio (2010): U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)),
// so the variance is gain^2 * 2 / (fan_in + fan_out).
void XavierUniform(const Tensor& tensor, float gain = 1.0f);

// XavierNormal()
//
// N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)).
void XavierNormal(const Tensor& tensor, float gain = 1.0f);

// KaimingUniform()
//
// He et al. (2015) for a leaky ReLU of negative slope `a` (0: ReLU):
// U(-b, b) with b = sqrt(3) * gain / sqrt(fan), gain = sqrt(2 / (1 + a^2)) and
// fan chosen by `mode`. PyTorch's default Linear/Conv2d weight init is
// `KaimingUniform(w, sqrt(5))`, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
void KaimingUniform(const Tensor& tensor, float a = 0.0f,
                    FanMode mode = FanMode::kFanIn);

// KaimingNormal()
//
// N(0, std^2) with std = gain / sqrt(fan), gain = sqrt(2 / (1 + a^2)).
void KaimingNormal(const Tensor& tensor, float a = 0.0f,
                   FanMode mode = FanMode::kFanIn);

}  // namespace dive::nn

#endif  // NN_INIT_H_
