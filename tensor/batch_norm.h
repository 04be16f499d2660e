// File: tensor/batch_norm.h
// -----------------------------------------------------------------------------
//
// Forward and backward kernels of batch normalization on float32 tensors,
// without autograd (`autograd/functions.h` wraps them). The input is either
// [N, C] (after a fully connected layer) or [N, C, H, W] (after a
// convolution); statistics are per channel C, over N (and H, W): m = N * H * W
// values each. Sums over each (n, c) plane are accumulated in 16 float
// lanes, the planes' sums in double. The statistics read x once from memory
// (per plane, its sum, then its squared deviations from its own mean while
// it is in cache, combined over the planes); the backward reads x and dy
// twice. A channels-last [N, C, H, W] input (tensor/memory_format.h) is
// read as it lies, as the rows of an [N * H * W, C] matrix, and gives
// channels-last outputs (y, and dx, for which dy is read in x's layout).
// Conventions follow PyTorch's `batch_norm`: training normalizes
// with the biased batch variance and stores the unbiased one in the running
// variance.
//
// Example (one training step and inference):
//
//   Tensor x = dive::Normal({256, 6, 28, 28}, 3, 2);
//   Tensor gamma = Tensor::Ones({6}), beta = Tensor::Zeros({6});
//   Tensor running_mean = Tensor::Zeros({6}), running_var = Tensor::Ones({6});
//   BatchNormSaved saved;
//   Tensor y = BatchNormTrainForward(x, gamma, beta, running_mean, running_var,
//                                    /*momentum=*/0.1f, /*eps=*/1e-5f, &saved);
//   Tensor dx, dgamma, dbeta;
//   BatchNormBackward(Tensor::Ones(y.shape()), x, gamma, saved, &dx, &dgamma,
//                     &dbeta);
//   Tensor z = BatchNormEvalForward(x, gamma, beta, running_mean, running_var,
//                                   1e-5f);
//
// `gamma` and `beta` may be undefined tensors (`Tensor()`), meaning a scale of
// 1 and a shift of 0 (PyTorch's affine=False).

#ifndef TENSOR_BATCH_NORM_H_
#define TENSOR_BATCH_NORM_H_

#include "tensor/tensor.h"

namespace dive {

// BatchNormSaved
//
// What the training forward saves for the backward: the batch mean and
// 1 / sqrt(biased variance + eps), each [C]; with a fused ReLU also the
// float32 scale and shift of the normalization, [C] each, from which the
// backward recomputes where the ReLU passed its input (so neither the
// output nor a mask is kept).
struct BatchNormSaved {
  Tensor mean, inv_std;
  bool relu = false;
  Tensor scale, shift;
};

// BatchNormTrainForward()
//
// y = gamma * (x - mean) * inv_std + beta, with the batch mean and
// inv_std = 1 / sqrt(var + eps) of each channel, var the biased variance
// (divided by m). Fills `saved` (required). When `running_mean` and
// `running_var` are defined ([C] float32 handles; they are written in place,
// also through views) they are updated as
//
//   running_mean = (1 - momentum) * running_mean + momentum * mean
//   running_var  = (1 - momentum) * running_var  + momentum * var * m / (m - 1)
//
// CHECK-fails when m < 2 (PyTorch: "Expected more than 1 value per channel
// when training").
//
// With `relu`, y = max(y, 0) in the same pass (BatchNorm then ReLU, as in
// ResNet and DenseNet), the values bit for bit those of the two ops.
//
// x may be float32 or bf16 (an activation stored at half the bytes; the
// statistics are computed from its values in the same order as for
// float32, so they are the same bits), and y
// is `y_dtype`, float32 or bf16 (the float32 result rounded to nearest
// even). The same holds for BatchNormEvalForward and, for x, for
// BatchNormBackward.
Tensor BatchNormTrainForward(const Tensor& x, const Tensor& gamma,
                             const Tensor& beta, Tensor running_mean,
                             Tensor running_var, float momentum, float eps,
                             BatchNormSaved* saved, bool relu = false,
                             DType y_dtype = DType::kFloat32);

// BatchNormEvalForward()
//
// y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, then
// max(y, 0) in the same pass with `relu`.
Tensor BatchNormEvalForward(const Tensor& x, const Tensor& gamma,
                            const Tensor& beta, const Tensor& running_mean,
                            const Tensor& running_var, float eps,
                            bool relu = false, DType y_dtype = DType::kFloat32);

// BatchNormBackward()
//
// The gradients of `BatchNormTrainForward` given dy, the forward input x,
// gamma and the saved statistics. With xhat = (x - mean) * inv_std and sums
// over the m values of a channel:
//
//   dbeta  = sum(dy)
//   dgamma = sum(dy * xhat)
//   dx     = gamma * inv_std / m * (m * dy - sum(dy) - xhat * sum(dy * xhat))
//
// Each of `dx`, `dgamma`, `dbeta` is set to a new tensor, or skipped when
// null. After a forward with a fused ReLU (saved.relu), dy is first zeroed
// where the ReLU blocked its input: the gradient of the two ops.
void BatchNormBackward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                       const BatchNormSaved& saved, Tensor* dx, Tensor* dgamma,
                       Tensor* dbeta);

}  // namespace dive

#endif  // TENSOR_BATCH_NORM_H_
