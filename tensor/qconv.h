// File: tensor/qconv.h
// -----------------------------------------------------------------------------
//
// Int8 2-D convolution on NCHW uint8 activations and int8 weights, on the
// int8 GEMM's kernels (tensor/qgemm.h) with the same fused requantization:
//
//   acc[n, o, i, j] = sum over c, a, b of
//       (x[n, c, i*stride_h - pad_h + a, j*stride_w - pad_w + b] -
//       x_zero_point)
//       * w[o, c, a, b]
//   y[n, o, i, j]   = requant_o(acc[n, o, i, j])      (QRequantization)
//
// with x read as x_zero_point outside the image (the real value 0, as
// PyTorch's and ONNX's quantized convolutions pad). It is a GEMM of the
// weights [OC, C*KH*KW] (packed once: PackQConv2dWeights) with the im2col of
// the images, which is never stored whole: each thread writes its block of
// it, uint8 padded with x_zero_point, straight into the kernel's packed
// panels (images side by side where their planes are small), and the output
// tile leaves the kernel requantized, in NCHW. With stride 1 on the VNNI and
// generic paths there is no im2col where the planes fill the kernel's
// tiles: the input is reordered once (channels interleaved by 4, padded)
// and the kernel reads it in place at each kernel offset (qconv.cc).
// Groups = 1, no dilation. Threads (OpenMP) take blocks of output pixels.
//
// On the avx512_vnni path, KxK convolutions with at least 1024 products per
// output (c * kh * kw) run on oneDNN's int8 convolution instead, where it
// measured faster; only its int32 sums are used, and the requantization is the
// one above, so the output is the same bytes (tensor/qconv_onednn.h, with the
// measurements). QConvLibrary chooses.
//
// Example:
//
//   absl::StatusOr<dive::QPackedWeights> w = dive::PackQConv2dWeights(
//       dive::DefaultQGemmPath(), /*oc=*/64, /*c=*/3, 3, 3, weight);
//   dive::QConv2dParams p;
//   p.pad_h = p.pad_w = 1;
//   absl::Status s = dive::QConv2d(n, h, w_in, x, x_zero_point, *w, p, rq, y);

#ifndef TENSOR_QCONV_H_
#define TENSOR_QCONV_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tensor/qgemm.h"

namespace dive {

// Which kernels run QConv2d on weights packed for the avx512_vnni path:
// kAuto (the default), oneDNN on the shapes where it measured faster
// (tensor/qconv_onednn.h), dive's elsewhere; kDive, dive's everywhere;
// kOneDnn, oneDNN on every shape (for tests and measurements). Every other
// path runs dive's. The results are the same bytes either way.
// Process-wide; set at startup by the environment variable
// DIVE_QCONV_LIBRARY=auto|dive|onednn or, where that is unset, by
// DIVE_CONV_LIBRARY (tensor/conv.h's, for the bf16 convolution), so that
// DIVE_CONV_LIBRARY=dive runs dive's kernels on every convolution.
enum class QConvLibrary { kAuto, kDive, kOneDnn };
QConvLibrary GetQConvLibrary();
void SetQConvLibrary(QConvLibrary library);

// Whether QConv2d with these weights runs on oneDNN now (any input size).
bool QConv2dUsesOneDnn(const QPackedWeights& weights);

struct QConv2dParams {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
};

// Packs w [oc, c, kh, kw] (int8, zero point 0, contiguous) for `path`.
// InvalidArgument for a size < 1 or c * kh * kw > kQGemmMaxK;
// FailedPrecondition when the CPU lacks `path`.
absl::StatusOr<QPackedWeights> PackQConv2dWeights(QGemmPath path, int64_t oc,
                                                  int64_t c, int64_t kh,
                                                  int64_t kw, const int8_t* w);

// The output size along one dimension, (in + 2 * pad - kernel) / stride + 1,
// or InvalidArgument when it is below 1 or stride < 1 or pad < 0.
absl::StatusOr<int64_t> QConv2dOutSize(int64_t in, int64_t kernel,
                                       int64_t stride, int64_t pad);

// y [n, oc, oh, ow] (contiguous; uint8_t, int32_t or float as rq.output
// says) from x [n, c, h, w] (contiguous uint8, zero point x_zero_point),
// c, oc and the kernel size from `w`. InvalidArgument for n, h or w < 1, a
// bad stride, padding or output size, x_zero_point outside 0..255, weights
// not packed by PackQConv2dWeights, and the QRequantization errors of
// tensor/qgemm.h; FailedPrecondition when the CPU lacks the weights' path.
absl::Status QConv2d(int64_t n, int64_t h, int64_t w, const uint8_t* x,
                     int32_t x_zero_point, const QPackedWeights& weights,
                     const QConv2dParams& p, const QRequantization& rq,
                     void* y);

}  // namespace dive

#endif  // TENSOR_QCONV_H_
