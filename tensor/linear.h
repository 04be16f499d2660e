// File: tensor/linear.h
// -----------------------------------------------------------------------------
//
// Forward and backward kernels of a fully connected layer, y = x w^T + b, on
// float32 tensors, without autograd (`autograd/functions.h` wraps them, as
// it wraps the convolution kernels of `tensor/conv.h`). Each is one call of
// the run-time-dispatched `dive::Gemm` on contiguous operands (views are made
// contiguous first); results are new contiguous tensors. Shape errors
// CHECK-fail with a message that names the shapes.
//
// Example:
//
//   Tensor x = dive::Normal({256, 784}, 0, 1);
//   Tensor w = dive::Normal({10, 784}, 0, 0.01f);
//   Tensor b = Tensor::Zeros({10});
//   Tensor y = LinearForward(x, w, b);                 // [256, 10]
//   Tensor dy = Tensor::Ones(y.shape());
//   Tensor dx = LinearBackwardInput(dy, w);            // [256, 784]
//   Tensor dw = LinearBackwardWeight(dy, x);           // [10, 784]
//   Tensor db = LinearBackwardBias(dy);                // [10]

#ifndef TENSOR_LINEAR_H_
#define TENSOR_LINEAR_H_

#include "tensor/tensor.h"

namespace dive {

// LinearForward()
//
// x [N, in] times w [out, in] transposed, plus bias [out] (or an undefined
// `Tensor()` for none): [N, out]. Frozen weights (Tensor::Frozen) are packed
// once and kept: the GEMM then computes y^T = w x^T with w as its packed
// left operand, and writes each tile of y^T transposed into y (the same
// sums in the same order: the same values, but on the generic path, whose
// Eigen GEMM blocks each operand order its own way).
Tensor LinearForward(const Tensor& x, const Tensor& w, const Tensor& bias);

// LinearBackwardInput()
//
// The gradient with respect to x given dy [N, out]: dy w, [N, in].
Tensor LinearBackwardInput(const Tensor& dy, const Tensor& w);

// LinearBackwardWeight()
//
// The gradient with respect to w given dy [N, out] and the forward input x
// [N, in]: dy^T x, [out, in].
Tensor LinearBackwardWeight(const Tensor& dy, const Tensor& x);

// LinearBackwardBias()
//
// The gradient with respect to the bias: dy summed over the batch, [out].
Tensor LinearBackwardBias(const Tensor& dy);

}  // namespace dive

#endif  // TENSOR_LINEAR_H_
