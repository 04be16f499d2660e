// File: autograd/functions.h
// -----------------------------------------------------------------------------
//
// Differentiable operations on `Variable`s. Each computes its result with the
// kernels of `//tensor` and records a closure for its gradient. Elementwise
// ops broadcast like NumPy and reduce their gradients back to each input's
// shape. Every function here is checked against finite differences in
// `functions_test.cc` with `GradCheck` (see `autograd/grad_check.h`).
//
// The set is small: elementwise primitives, reductions and reshapes, plus
// fused ops where fusing is much faster or more stable than composing
// primitives (Linear, Conv2d, pooling, BatchNorm, the losses).
//
// Example (one step of softmax regression):
//
//   Variable w(dive::Normal({784, 10}, 0, 0.01f), /*requires_grad=*/true);
//   Variable b(Tensor::Zeros({10}), /*requires_grad=*/true);
//   Variable logits = MatMul(x, w) + b;            // x: [N, 784]
//   Variable loss = SoftmaxCrossEntropy(logits, labels);
//   loss.Backward();                               // fills w.grad(), b.grad()

#ifndef AUTOGRAD_FUNCTIONS_H_
#define AUTOGRAD_FUNCTIONS_H_

#include <vector>

#include "autograd/variable.h"
#include "tensor/batch_norm.h"
#include "tensor/conv.h"
#include "tensor/pool.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::autograd {

// ---- Elementwise, broadcasting ----------------------------------------------
Variable operator+(const Variable& a, const Variable& b);
Variable operator-(const Variable& a, const Variable& b);
Variable operator*(const Variable& a, const Variable& b);
Variable operator/(const Variable& a, const Variable& b);
Variable operator-(const Variable& a);
Variable operator+(const Variable& a, float s);
Variable operator-(const Variable& a, float s);
Variable operator*(const Variable& a, float s);
Variable operator*(float s, const Variable& a);
Variable operator/(const Variable& a, float s);

Variable Exp(const Variable& x);
Variable Log(const Variable& x);
Variable Sqrt(const Variable& x);
Variable Square(const Variable& x);
Variable Pow(const Variable& x, float exponent);
Variable Relu(const Variable& x);
Variable Sigmoid(const Variable& x);
Variable Tanh(const Variable& x);

// ---- Reductions -------------------------------------------------------------
// Over `axes` (empty: all axes).
Variable Sum(const Variable& x, const std::vector<int>& axes = {},
             bool keepdim = false);
Variable Mean(const Variable& x, const std::vector<int>& axes = {},
              bool keepdim = false);

// ---- Shape ------------------------------------------------------------------
Variable Reshape(const Variable& x, const Shape& shape);
// Flattens dimensions [start, end] into one ([N, C, H, W] -> [N, C*H*W]).
Variable Flatten(const Variable& x, int start = 1, int end = -1);
Variable Transpose(const Variable& x, int a, int b);
// Joins along `axis` (the channel concat of GoogLeNet and DenseNet). The
// second form stores the result in `output_dtype`, converting each part
// (ops::Concat); the parts' gradients are float32 either way.
Variable Concat(const std::vector<Variable>& xs, int axis);
Variable Concat(const std::vector<Variable>& xs, int axis, DType output_dtype);

// ---- Linear algebra ---------------------------------------------------------
// [M, K] x [K, N] -> [M, N].
Variable MatMul(const Variable& a, const Variable& b);
// x [N, in], weight [out, in] (PyTorch layout), bias [out] or undefined:
// x * weight^T + bias.
Variable Linear(const Variable& x, const Variable& weight,
                const Variable& bias);

// ---- Softmax ----------------------------------------------------------------
Variable Softmax(const Variable& x, int axis = -1);
Variable LogSoftmax(const Variable& x, int axis = -1);

// ---- Convolution and pooling (NCHW) -----------------------------------------
// x [N, C, H, W], weight [OC, C, KH, KW], bias [OC] or undefined.
Variable Conv2d(const Variable& x, const Variable& weight, const Variable& bias,
                const Conv2dParams& params);
// The convolution with its epilogue in the same pass (tensor/conv.h's
// Conv2dEpilogue): relu(conv(x) + bias + residual) when `relu`, else without
// it; residual (the output's shape) may be undefined. The same values as the
// separate ops, bit for bit; differentiable in all of x, weight, bias and
// residual (the ReLU's gradient is masked by the output). Traced as
// "FusedConv2d" with an int "relu".
//
// `output_dtype` bfloat16 stores the output in bf16 (Conv2dEpilogue::dtype),
// for a consumer that reads bf16 activations: another convolution (x may be
// bf16 here). Under MatmulPrecision::kBfloat16 that consumer rounds its input
// to bf16 anyway, so the step's values and gradients are unchanged, bit for
// bit (but for ReLU outputs below bf16's smallest subnormal, 2^-133, whose
// gradient is masked), at half the bytes written, saved and read back.
Variable Conv2d(const Variable& x, const Variable& weight, const Variable& bias,
                const Conv2dParams& params, const Variable& residual,
                bool relu, DType output_dtype = DType::kFloat32);
// y_dtype: float32, or bf16 for a bf16 x (MaxPool2dForward).
Variable MaxPool2d(const Variable& x, const Pool2dParams& params,
                   DType y_dtype = DType::kFloat32);
// PyTorch's default count_include_pad=True.
Variable AvgPool2d(const Variable& x, const Pool2dParams& params);
// Mean over H and W: [N, C, H, W] -> [N, C, 1, 1].
Variable GlobalAvgPool2d(const Variable& x);

// ---- Normalization and regularization ---------------------------------------
// Batch normalization of x [N, C] or [N, C, H, W] per channel C. In training
// it normalizes with the batch statistics (biased variance) and updates the
// running statistics in place (PyTorch's momentum convention, unbiased
// variance); in evaluation it uses the running statistics. With `relu`,
// ReLU follows in the same pass (traced as BatchNorm with int "relu" 1);
// values and gradients are those of Relu(BatchNorm(...)). In evaluation
// without gradients (NoGradGuard, or no input that wants one) it is one
// pass over x.
//
// x may be bf16 (tensor/batch_norm.h). `output_dtype` bfloat16 stores y in
// bf16 for a consumer that reads bf16 activations (a convolution, which
// rounds its input to bf16 anyway under MatmulPrecision::kBfloat16); the
// evaluation path that builds a graph (gradients wanted in evaluation mode)
// keeps float32.
Variable BatchNorm(const Variable& x, const Variable& gamma,
                   const Variable& beta, const Tensor& running_mean,
                   const Tensor& running_var, bool training, float momentum,
                   float eps, bool relu = false,
                   DType output_dtype = DType::kFloat32);
// Inverted dropout: zeroes each element with probability p and scales the
// rest by 1/(1-p).
Variable Dropout(const Variable& x, float p, Generator& gen);
// x * mask, the differentiable core of Dropout (mask already scaled).
Variable ApplyMask(const Variable& x, const Tensor& mask);

// ---- Losses -----------------------------------------------------------------
// Mean over the batch of -log softmax(logits)[label]; logits [N, C], labels
// int64 [N] in [0, C). Computed with log-sum-exp, stable for any logits.
Variable SoftmaxCrossEntropy(const Variable& logits, const Tensor& labels);
// Mean of squared differences (PyTorch's MSELoss).
Variable MseLoss(const Variable& prediction, const Variable& target);

}  // namespace dive::autograd

#endif  // AUTOGRAD_FUNCTIONS_H_
