// File: tensor/im2col.h
// -----------------------------------------------------------------------------
//
// Internal to //tensor (conv.cc): the geometry of one convolution and its
// im2col, the column matrix that makes it a GEMM, produced block by block as
// the GEMM's right operand (`GemmRhs`) and so never stored whole; and
// col2im, its adjoint, for the input gradient.
//
// Im2col, computed block by block as a GEMM right operand (GemmRhs), so the
// column matrix is never stored whole. Several images may sit side by side:
//
//   col [C*KH*KW, cn*OH*OW], row r = (c, a, b), column q = (image, i, j),
//   col[r, q] = x[image, c, i*sh - ph + a, j*sw - pw + b] (0 outside).
//
// With ih = i*sh - ph, iw = j*sw - pw and base = image*C*H*W + ih*W + iw
// (per column) and off = c*H*W + a*W + b (per row), element (r, q) is
// x[base + off] when 0 <= ih + a < H and 0 <= iw + b < W. On AVX-512 a row
// is written 16 columns at a time, with one masked load per run of
// consecutive addresses (a gather for groups of many short runs).

#ifndef TENSOR_IM2COL_H_
#define TENSOR_IM2COL_H_

#include <cstdint>

#include "tensor/bf16.h"
#include "tensor/kernel_util.h"

namespace dive::conv_internal {

// Geometry of one convolution, shared by the forward and backward kernels:
// the window of the weight's kernel over the input's planes (h x w, kh x kw,
// the stride, padding and output size), and the batch and channels.
struct ConvGeometry : kernel_internal::Window2d {
  int64_t n, c;  // input [n, c, h, w]
  int64_t oc;    // weight [oc, c, kh, kw]

  int64_t InPlane() const { return c * h * w; }      // one image of x
  int64_t OutPlane() const { return oc * oh * ow; }  // one image of y
  int64_t Ohw() const { return oh * ow; }
  int64_t Ckk() const { return c * kh * kw; }  // im2col rows
  // 1x1 kernel, stride 1, no padding: x_n [C, H*W] is its own im2col.
  bool Direct() const {
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
  }
};

// Rows [r0, r0 + rn) x columns [q0, q0 + qn) of col to
// dst[(r - r0) * ld + (q - q0)]; `x` is the first image of the group, float32
// or bf16 (tensor/bf16.h; written to dst exactly, as float).
template <typename T>
void Im2ColBlock(const ConvGeometry& g, const T* __restrict x, int64_t r0,
                 int64_t rn, int64_t q0, int64_t qn, float* __restrict dst,
                 int64_t ld);

// B[r, image * hw + t] = base[image * stride + r * hw + t]: planes side by
// side. Writes rows [r0, r0 + rn) x columns [q0, q0 + qn) of B to
// dst[(r - r0) * ld + (q - q0)]. T is float or bfloat16, as for Im2ColBlock.
template <typename T>
void PlanesBlock(const T* base, int64_t stride, int64_t hw, int64_t r0,
                 int64_t rn, int64_t q0, int64_t qn, float* dst, int64_t ld);

// The GemmRhs of planes side by side (dy [N, OC, OH*OW] as [OC, N*OH*OW]).
template <typename T>
auto PlanesRhs(const T* base, int64_t stride, int64_t hw) {
  return [=](int64_t r0, int64_t rn, int64_t q0, int64_t qn, float* dst,
             int64_t ld) {
    PlanesBlock(base, stride, hw, r0, rn, q0, qn, dst, ld);
  };
}

// The GemmRhs of col for images x, x + InPlane, ... (the GEMMs ask for
// blocks of 64 columns, GemmNT for 1024). A 1x1 convolution with stride 1
// and no padding is its own im2col: its planes are copied as they are.
template <typename T>
auto Im2ColRhs(const ConvGeometry& g, const T* x) {
  return [&g, x](int64_t r0, int64_t rn, int64_t q0, int64_t qn, float* dst,
                 int64_t ld) {
    if (g.Direct()) {
      PlanesBlock(x, g.InPlane(), g.Ohw(), r0, rn, q0, qn, dst, ld);
    } else {
      Im2ColBlock(g, x, r0, rn, q0, qn, dst, ld);
    }
  };
}

// The adjoint of im2col: dx [C, H, W] += the columns col [C*KH*KW, OH*OW]
// of one image scattered back; `ld` is the row stride of col (larger than
// OH*OW when several images sit side by side).
void Col2Im(const ConvGeometry& g, const float* __restrict col,
            float* __restrict dx, int64_t ld);

}  // namespace dive::conv_internal

#endif  // TENSOR_IM2COL_H_
