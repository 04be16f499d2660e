// File: tensor/qops.h
// -----------------------------------------------------------------------------
//
// The elementwise int8 kernels of quantized inference besides the GEMM and
// the convolution (tensor/qgemm.h, tensor/qconv.h): the residual add and the
// channel concatenation of uint8 activations, each input in its own
// per-tensor scale and zero point (real = scale * (q - zero_point), as
// quant/qparams.h's activations), the output requantized to another:
//
//   QRequantizeU8  y = clamp(round_half_even(m * (x - zx)) + zy, 0, 255),
//                  m = double(sx) / double(sy) (a table of the 256 values;
//                  a copy where the two QUint8Params are equal)
//   QAddU8         y = clamp(round_half_even(ma * (a - za) + mb * (b - zb))
//                  + zy, relu ? zy : 0, 255), ma = double(sa) / double(sy),
//                  mb = double(sb) / double(sy), each product and the sum
//                  rounded to double (never contracted into an FMA: the
//                  target is built with -ffp-contract=off), so a plain
//                  double reference gives the same bytes
//   QConcatChannelsU8
//                  [N, C_i, H, W] parts side by side on the channels, each
//                  part QRequantizeU8'd to the output's QUint8Params (copied
//                  where its own are the output's)
//   QMaxPool2dU8   the largest byte of each pooling window: no
//                  requantization (the maximum commutes with it)
//
// Rounding is half to even (std::nearbyint in the default mode), as
// quant/qparams.h's Quantize and tensor/qgemm.h's requantization. With
// `relu`, the floor is the output's zero point: the real 0. Arguments are
// the caller's (the int8 model checks scales and zero points when it loads
// them): a null pointer (but for an empty tensor), a scale that is not finite
// and > 0, a zero point outside 0..255 or a negative size is a CHECK failure.
// Threads (OpenMP) take blocks of elements (parts of images for the
// concatenation) where worth it.
//
// Example (ResNet's relu(body + shortcut) on uint8 activations):
//
//   dive::QAddU8(count, body, {0.05f, 128}, shortcut, {0.02f, 0},
//                /*y_params=*/{0.04f, 0}, /*relu=*/true, out);
//   dive::QConcatChannelsU8(n, h * w, {{p1, 64, q1}, {p2, 128, q2}}, qy, y);

#ifndef TENSOR_QOPS_H_
#define TENSOR_QOPS_H_

#include <cstdint>
#include <vector>

#include "tensor/pool.h"

namespace dive {

// A uint8 tensor's quantization: real = scale * (q - zero_point).
struct QUint8Params {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

inline bool operator==(const QUint8Params& a, const QUint8Params& b) {
  return a.scale == b.scale && a.zero_point == b.zero_point;
}

// y[i] for x[i], i < count, from x_params to y_params (above). y may be x.
void QRequantizeU8(int64_t count, const uint8_t* x, QUint8Params x_params,
                   QUint8Params y_params, uint8_t* y);

// y[i] = the requantized a[i] + b[i], i < count (above). y may be a or b.
void QAddU8(int64_t count, const uint8_t* a, QUint8Params a_params,
            const uint8_t* b, QUint8Params b_params, QUint8Params y_params,
            bool relu, uint8_t* y);

// One input of QConcatChannelsU8: [N, channels, plane] contiguous uint8.
struct QConcatPart {
  const uint8_t* x = nullptr;
  int64_t channels = 0;
  QUint8Params params;
};

// y [n, sum of the parts' channels, plane] (contiguous) from the parts in
// order, each requantized to y_params. `plane` is H * W.
void QConcatChannelsU8(int64_t n, int64_t plane,
                       const std::vector<QConcatPart>& parts,
                       QUint8Params y_params, uint8_t* y);

// y [planes, OH, OW] = the largest byte of each window of x [planes, H, W]
// (both contiguous), the windows of `p` as MaxPool2dForward's
// (tensor/pool.h: output sizes rounded down, padding at most half the
// window, so that every window holds a pixel and padding never wins).
// The vertical maxima of the whole plane, then their horizontal maxima,
// each one long loop over contiguous bytes that -O3 vectorizes, and the
// outputs picked from them (the windows the padding clips, row by row).
// CHECK-fails on parameters MaxPool2dForward rejects (Pool2dOutputShape).
void QMaxPool2dU8(int64_t planes, int64_t h, int64_t w, const Pool2dParams& p,
                  const uint8_t* x, uint8_t* y);

}  // namespace dive

#endif  // TENSOR_QOPS_H_
