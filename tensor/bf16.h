// File: tensor/bf16.h
// -----------------------------------------------------------------------------
//
// bfloat16: the upper 16 bits of a float32 (sign, the 8-bit exponent, 7
// mantissa bits): float32's range with about 3 significant digits. The
// product of two bf16 values is exact in float32, which is why matrix engines
// (AVX512-BF16's VDPBF16PS, AMX's TDPBF16PS) multiply bf16 operands and add
// in float32; tensor/gemm.h computes the same products under
// MatmulPrecision::kBfloat16 on every CPU.
//
// Conversion rounds to nearest, ties to even, as the hardware's VCVTNEPS2BF16
// does; NaN stays NaN (quiet), infinities stay infinite, and values past the
// largest bf16 round to infinity.
//
// `bfloat16` is the element type of a `DType::kBfloat16` tensor
// (tensor/tensor.h): activations stored at half the bytes of float32, as
// PyTorch's bf16 autocast stores them. It converts to and from float only
// explicitly; arithmetic happens in float32.
//
// Example:
//
//   dive::RoundToBf16(1.0f + 1.0f / 256)  // 1.0f: the tie goes to even
//   dive::RoundToBf16(3.14159f)           // 3.140625f
//   float f = static_cast<float>(dive::bfloat16(0.1f));  // 0.10009765625f

#ifndef TENSOR_BF16_H_
#define TENSOR_BF16_H_

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace dive {

// Branch-free, so that the loops below that call it vectorize.
inline uint16_t FloatToBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  // Round to nearest even: add 0x7FFF plus the lowest kept bit.
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (bits >> 16) | 0x0040u;  // NaN: keep it quiet
  return static_cast<uint16_t>(
      (bits & 0x7FFFFFFFu) > 0x7F800000u ? quiet_nan : rounded);
}

inline float Bf16ToFloat(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}

// x rounded to the nearest bf16, as a float.
inline float RoundToBf16(float x) { return Bf16ToFloat(FloatToBf16(x)); }

// Rounds x[0 : n] to bf16 in place.
inline void RoundToBf16(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = RoundToBf16(x[i]);
}

// A bf16 value: its 16 bits, with explicit conversions from and to any
// arithmetic type, through float (to bf16: rounded to nearest even; to float:
// exact).
struct bfloat16 {
  uint16_t bits;

  bfloat16() = default;
  template <typename T,
            typename = std::enable_if_t<std::is_arithmetic_v<T>>>
  explicit bfloat16(T x) : bits(FloatToBf16(static_cast<float>(x))) {}
  template <typename T,
            typename = std::enable_if_t<std::is_arithmetic_v<T>>>
  explicit operator T() const {
    return static_cast<T>(Bf16ToFloat(bits));
  }
};
static_assert(sizeof(bfloat16) == 2, "bfloat16 must be 2 bytes");

// dst[i] = bf16(src[i]) for i < n; a loop the compiler vectorizes.
inline void FloatToBf16(const float* __restrict src, bfloat16* __restrict dst,
                        int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i].bits = FloatToBf16(src[i]);
}

// dst[i] = float(src[i]) for i < n (exact).
inline void Bf16ToFloat(const bfloat16* __restrict src, float* __restrict dst,
                        int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToFloat(src[i].bits);
}

}  // namespace dive

#endif  // TENSOR_BF16_H_
