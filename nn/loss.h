// File: nn/loss.h
// -----------------------------------------------------------------------------
//
// Loss functions for training, each a scalar `Variable` averaged over the
// batch, ready for `Backward()`.
//
// Example:
//
//   Variable logits = net(x);                         // [N, 10]
//   Variable loss = nn::CrossEntropyLoss(logits, y);  // y: int64 [N]
//   loss.Backward();
//
//   Variable mse = nn::MseLoss(prediction, target);

#ifndef NN_LOSS_H_
#define NN_LOSS_H_

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "tensor/tensor.h"

namespace dive::nn {

// CrossEntropyLoss()
//
// PyTorch's `CrossEntropyLoss` (softmax plus negative log-likelihood, mean
// over the batch) of logits [N, C] and int64 class labels [N] in [0, C).
// Stable for any logits; CHECK-fails naming the shapes on a mismatch.
inline Variable CrossEntropyLoss(const Variable& logits, const Tensor& labels) {
  return SoftmaxCrossEntropy(logits, labels);
}

// MseLoss()
//
// The mean of squared differences, `dive::MseLoss` from autograd (the same
// function, so unqualified calls do not become ambiguous).
using ::dive::MseLoss;

}  // namespace dive::nn

#endif  // NN_LOSS_H_
