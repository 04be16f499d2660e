// File: distributed/sync_batch_norm.h
// -----------------------------------------------------------------------------
//
// Batch normalization whose training statistics are those of the whole
// global batch, all ranks of a `ProcessGroup` together, like PyTorch's
// SyncBatchNorm: with S ranks of b examples each, every rank normalizes
// with the mean and variance of all S*b examples, updates the running
// statistics with them, and its backward pass all-reduces the two
// per-channel sums the input gradient needs (sum of dy, sum of dy * x_hat),
// so that the gradient is that of the whole batch's loss. Each training
// call costs two all-reduces of 2C + 1 doubles (forward) and 2C doubles
// (backward); evaluation is the ordinary local BatchNorm (running
// statistics need no communication).
//
// Gradient convention (PyTorch's): each rank's loss is the mean over its own
// b examples and DistributedDataParallel averages parameter gradients over
// the ranks, so the input gradient on each rank is that of the SUM of the
// ranks' losses; gamma's and beta's gradients are local and DDP averages
// them. Together they are exactly the gradients of the global-batch loss.
//
// nn must not depend on distributed, and the models hold their BatchNorm
// layers by type, so the layers cannot be replaced. `ConvertSyncBatchNorm`
// converts them where they are, through forward hooks: in training, a
// pre-hook hands the layer's own Forward a [1, C(, 1, 1)] placeholder in
// evaluation mode (a few hundred flops, its result dropped), and the hook
// returns `SyncBatchNormTrain` of the real input with the layer's
// parameters, buffers and fused ReLU (BatchNorm's AppliesRelu), and counts
// the batch in num_batches_tracked. Other hooks on the same layer see the
// placeholder: as the input if registered after these, as the output if
// before (train's --profile reports such a layer's statistics wrongly).
//
// Collectives in the backward pass: every rank runs the same graph, so the
// SyncBatchNorm all-reduces come in the same order on every rank, also
// between DistributedDataParallel's overlapped bucket all-reduces, as long
// as every parameter gets a gradient on every rank (otherwise a bucket can
// start at another moment on one rank than on another; with SyncBatchNorm,
// use DataParallelOptions::overlap = false for models with parameters
// unused on some ranks).
//
// Errors of the collectives cannot travel through a forward hook or a
// backward closure: the first is kept and the data treated as this rank's
// alone; `TakeError()` returns it (the trainer checks after each step).
//
// Example:
//
//   absl::StatusOr<SyncBatchNormLayers> sync =
//       ConvertSyncBatchNorm(model, group);   // every BatchNorm1d/2d
//   ... loss.Backward(); ddp.AllReduceGradients(); ...
//   if (absl::Status s = sync->TakeError(); !s.ok()) return s;

#ifndef DISTRIBUTED_SYNC_BATCH_NORM_H_
#define DISTRIBUTED_SYNC_BATCH_NORM_H_

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "autograd/hook_handle.h"
#include "autograd/variable.h"
#include "distributed/process_group.h"
#include "nn/module.h"
#include "tensor/tensor.h"

namespace dive::distributed {

// SyncBatchNormTrain()
//
// Training-mode batch normalization of x ([N, C] or [N, C, H, W], float32)
// with the statistics of the global batch over `group` (every rank calls
// it with the same C; N may differ), then ReLU if `relu`. Updates
// `running_mean` and `running_var` (when defined) as nn::BatchNorm does,
// with the unbiased variance of the global batch. `error` (may be null)
// receives the first failed collective's status, forward or backward.
// CHECK-fails on bad shapes or a global batch of one value per channel.
autograd::Variable SyncBatchNormTrain(ProcessGroup& group,
                                      const autograd::Variable& x,
                                      const autograd::Variable& weight,
                                      const autograd::Variable& bias,
                                      Tensor running_mean, Tensor running_var,
                                      float momentum, float eps, bool relu,
                                      std::shared_ptr<absl::Status> error);

// The layers `ConvertSyncBatchNorm` converted; destroying this, or
// `Remove()`, turns them back into plain BatchNorm.
class SyncBatchNormLayers {
 public:
  SyncBatchNormLayers() = default;
  SyncBatchNormLayers(SyncBatchNormLayers&&) = default;
  SyncBatchNormLayers& operator=(SyncBatchNormLayers&&) = delete;
  ~SyncBatchNormLayers() { Remove(); }

  // The number of layers converted.
  int count() const { return count_; }
  // The first error of a collective since the last call (OK: none).
  absl::Status TakeError();
  void Remove();

 private:
  friend SyncBatchNormLayers ConvertSyncBatchNorm(nn::Module&, ProcessGroup&);
  int count_ = 0;
  std::vector<autograd::HookHandle> hooks_;
  std::shared_ptr<absl::Status> error_ = std::make_shared<absl::Status>();
};

// ConvertSyncBatchNorm()
//
// Makes every nn::BatchNorm1d and BatchNorm2d of `model` (NamedModules)
// normalize with the global batch's statistics in training, over `group`,
// which must outlive the result. On a group of one it converts nothing
// (the local statistics are the global ones).
SyncBatchNormLayers ConvertSyncBatchNorm(nn::Module& model,
                                         ProcessGroup& group);

}  // namespace dive::distributed

#endif  // DISTRIBUTED_SYNC_BATCH_NORM_H_
