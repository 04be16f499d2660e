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
// Example:
//
//   dive::RoundToBf16(1.0f + 1.0f / 256)  // 1.0f: the tie goes to even
//   dive::RoundToBf16(3.14159f)           // 3.140625f

#ifndef TENSOR_BF16_H_
#define TENSOR_BF16_H_

#include <cstdint>
#include <cstring>

namespace dive {

inline uint16_t FloatToBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {  // NaN: keep it quiet
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  // Round to nearest even: add 0x7FFF plus the lowest kept bit.
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
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

}  // namespace dive

#endif  // TENSOR_BF16_H_
