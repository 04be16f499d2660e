// File: tensor/ops.h
// -----------------------------------------------------------------------------
//
// Math on float32 tensors, without autograd: elementwise ops with NumPy
// broadcasting, reductions, matrix products and softmax. Inputs may be any
// strided view; results are new contiguous tensors, but for the elementwise
// ops' results of the shape of a channels-last operand
// (tensor/memory_format.h), which are channels-last too. Shape errors
// CHECK-fail with a message that names the op and the shapes.
//
// Example:
//
//   Tensor x = Tensor::FromVector({1, 2, 3, 4, 5, 6}, {2, 3});
//   Tensor b = Tensor::FromVector({10, 20, 30}, {3});
//   Tensor y = ops::Add(x, b);               // [[11, 22, 33], [14, 25, 36]]
//   Tensor s = ops::Sum(x, {1});             // [6, 15]
//   Tensor p = ops::MatMul(x, x.Transpose(0, 1));  // [2, 2]
//
// Every op here that autograd differentiates has its derivative built in
// `autograd/functions.h` from these same kernels.

#ifndef TENSOR_OPS_H_
#define TENSOR_OPS_H_

#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace dive::ops {

// ---- Elementwise, broadcasting ----------------------------------------------
Tensor Add(const Tensor& a, const Tensor& b);
Tensor Sub(const Tensor& a, const Tensor& b);
Tensor Mul(const Tensor& a, const Tensor& b);
Tensor Div(const Tensor& a, const Tensor& b);
Tensor Maximum(const Tensor& a, const Tensor& b);
Tensor Minimum(const Tensor& a, const Tensor& b);
// Comparisons give 1.0f where true and 0.0f where false.
Tensor Greater(const Tensor& a, const Tensor& b);
Tensor Less(const Tensor& a, const Tensor& b);
Tensor Equal(const Tensor& a, const Tensor& b);
// `cond != 0 ? a : b`, all three broadcast together.
Tensor Where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---- With a scalar ----------------------------------------------------------
Tensor AddScalar(const Tensor& a, float s);
Tensor MulScalar(const Tensor& a, float s);
Tensor PowScalar(const Tensor& a, float exponent);
Tensor GreaterScalar(const Tensor& a, float s);
Tensor Clamp(const Tensor& a, float lo, float hi);

// ---- Unary ------------------------------------------------------------------
Tensor Neg(const Tensor& a);
Tensor Exp(const Tensor& a);
Tensor Log(const Tensor& a);
Tensor Sqrt(const Tensor& a);
Tensor Abs(const Tensor& a);
Tensor Square(const Tensor& a);
Tensor Relu(const Tensor& a);
Tensor Sigmoid(const Tensor& a);
Tensor Tanh(const Tensor& a);

// Fused gradients of the activations, given the activation's output y:
// grad * (y > 0), grad * y * (1 - y), grad * (1 - y^2). ReluBackward's y may
// also be bfloat16 (a convolution's output stored in bf16, tensor/conv.h).
Tensor ReluBackward(const Tensor& grad, const Tensor& y);
Tensor SigmoidBackward(const Tensor& grad, const Tensor& y);
Tensor TanhBackward(const Tensor& grad, const Tensor& y);

// ---- In place (for optimizers and gradient accumulation) --------------------
// dst += alpha * src (src broadcast to dst's shape).
void AddInPlace(Tensor& dst, const Tensor& src, float alpha = 1.0f);
void MulScalarInPlace(Tensor& dst, float s);

// ---- Reductions -------------------------------------------------------------
// Sum over `axes` (negative allowed; empty means all axes).
Tensor Sum(const Tensor& a, const std::vector<int>& axes = {},
           bool keepdim = false);
Tensor Mean(const Tensor& a, const std::vector<int>& axes = {},
            bool keepdim = false);
// Sums a broadcast result back to `shape` (the inverse of broadcasting, used
// for gradients). CHECK-fails when `shape` does not broadcast to a's shape.
Tensor SumTo(const Tensor& a, const Shape& shape);
Tensor Max(const Tensor& a, int axis, bool keepdim = false);
// Index of the largest element along `axis` (first on ties), as int64.
Tensor Argmax(const Tensor& a, int axis, bool keepdim = false);

// ---- Linear algebra ---------------------------------------------------------
// [M, K] x [K, N] -> [M, N], or batched [B, M, K] x [B, K, N] -> [B, M, N]
// (a 2-D operand is broadcast over the batch). Transposed views are read
// without copying.
Tensor MatMul(const Tensor& a, const Tensor& b);

// ---- Softmax ----------------------------------------------------------------
// Numerically stable (max-subtracted) softmax and log-softmax along `axis`.
Tensor Softmax(const Tensor& a, int axis = -1);
Tensor LogSoftmax(const Tensor& a, int axis = -1);

// ---- Shape ------------------------------------------------------------------
// Joins tensors along `axis`; all other dimensions must match. The first
// form keeps the tensors' common dtype; the second writes `dtype`, converting
// each part on the way (float32 to bf16 rounds to nearest even), so the
// parts' dtypes may differ: bf16 training stores DenseNet's concatenations so.
// The result is channels-last where a part is.
Tensor Concat(const std::vector<Tensor>& tensors, int axis);
Tensor Concat(const std::vector<Tensor>& tensors, int axis, DType dtype);

}  // namespace dive::ops

#endif  // TENSOR_OPS_H_
