// File: tensor/pool.h
// -----------------------------------------------------------------------------
//
// Forward and backward kernels of 2-D max and average pooling on float32
// NCHW tensors, without autograd (`autograd/functions.h` wraps them). Inputs
// may be any view; they are made contiguous first. The forward passes also
// read bf16 inputs (activations stored in bf16, nn/bf16_activations.h),
// widened a few planes at a time into a small buffer of the thread's; their
// outputs are float32, the max exactly the float32 max of the bf16 values.
// Results are new contiguous tensors, but for max pooling of a channels-last
// x (tensor/memory_format.h), which it reads as it lies and whose y, argmax
// and dx are channels-last too. Shape errors CHECK-fail with a message
// that names the op and the shapes. Each (n, c) plane is pooled on its own, the
// planes in parallel (OpenMP); on AVX-512, max pooling with stride 1 or 2
// computes a row of outputs 16 at a time, each window's maximum and index kept
// in registers, the padding read as -inf by masked loads.
//
// Max pooling's argmax is int32: a flat index within the plane always fits
// (MaxPool2dForward checks H * W < 2^31), and it halves the bytes of the
// indices that the forward writes and the backward reads (int64 made the
// forward write more bytes of indices than of outputs).
//
// Example (LeNet's pooling and its gradient):
//
//   Tensor y = dive::Normal({256, 6, 28, 28}, 0, 1);
//   Tensor argmax;
//   Tensor z = MaxPool2dForward(y, {2, 2, 2, 2}, &argmax); // [256, 6, 14, 14]
//   Tensor dz = MaxPool2dBackward(Tensor::Ones(z.shape()), argmax, y.shape());
//   Tensor a = AvgPool2dForward(y, {2, 2, 2, 2});          // [256, 6, 14, 14]

#ifndef TENSOR_POOL_H_
#define TENSOR_POOL_H_

#include <cstdint>

#include "tensor/shape.h"
#include "tensor/tensor.h"

namespace dive {

// Pool2dParams
//
// Window size, stride and padding of a 2-D pooling. As in PyTorch the padding
// may be at most half the window (`pad_h <= kernel_h / 2`), so every window
// holds at least one input element, and the output size is rounded down
// (ceil_mode=False). Example: `Pool2dParams{2, 2, 2, 2}` is the usual 2x2
// pooling with stride 2.
struct Pool2dParams {
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h = 0, pad_w = 0;
};

// The shape [N, C, OH, OW] a pooling of x [N, C, H, W] by `p` gives, after
// the checks every pooling here makes (x 4-D, window and stride positive,
// padding at most half the window, the padded input at least the window),
// which CHECK-fail naming `op`, the shape and the parameters. For kernels
// of other dtypes (tensor/qops.h QMaxPool2dU8) and their callers.
Shape Pool2dOutputShape(const char* op, const Shape& x, const Pool2dParams& p);

// MaxPool2dForward()
//
// The largest element of each window of x [N, C, H, W], giving
// [N, C, OH, OW]. Padding counts as -infinity and NaN wins over any number
// (PyTorch semantics). When `argmax` is not null it is set to an int32
// (DType::kInt32) tensor of the output's shape holding, for each output, the
// flat index ih * W + iw of the chosen element within its (n, c) plane; every
// index is valid (never -1): the first maximum in (ih, iw) order on ties, the
// last NaN where the window holds NaNs, the first valid input where all are
// -inf. With `argmax` null (inference) no index is computed at all.
// The result is float32, or with `y_dtype` kBfloat16 and a bf16 x, bf16:
// exact, every maximum being one of x's values (bf16 activations into a
// convolution, nn::MaxPool2d::set_feeds_convolution).
Tensor MaxPool2dForward(const Tensor& x, const Pool2dParams& p, Tensor* argmax,
                        DType y_dtype = DType::kFloat32);

// MaxPool2dBackward()
//
// Routes each element of dy to the input position in `argmax` (the int32
// indices of `MaxPool2dForward`); an input chosen by several overlapping
// windows receives the sum. Returns dx of shape `x_shape`.
Tensor MaxPool2dBackward(const Tensor& dy, const Tensor& argmax,
                         const Shape& x_shape);

// AvgPool2dForward()
//
// The mean of each window of x [N, C, H, W], with PyTorch's default
// count_include_pad=True: padding counts as zeros and every window divides by
// kernel_h * kernel_w, also at the borders.
Tensor AvgPool2dForward(const Tensor& x, const Pool2dParams& p);

// AvgPool2dBackward()
//
// Spreads each element of dy, divided by kernel_h * kernel_w, over the input
// positions of its window. Returns dx of shape `x_shape`.
Tensor AvgPool2dBackward(const Tensor& dy, const Shape& x_shape,
                         const Pool2dParams& p);

}  // namespace dive

#endif  // TENSOR_POOL_H_
