// File: distributed/data_parallel.h
// -----------------------------------------------------------------------------
//
// `DistributedDataParallel` keeps the replicas of a model on the ranks of a
// `ProcessGroup` identical while each rank trains on its own part of every
// batch, like PyTorch's DistributedDataParallel (without overlapping
// communication with the backward pass):
//
//   * `BroadcastParameters()` copies rank 0's parameters (and, through
//     `BroadcastTensors`, buffers) to every rank before training, so all
//     replicas start equal whatever their own initialization;
//   * `AllReduceGradients()`, called between `Backward()` and the optimizer's
//     `Step()`, replaces every gradient by its mean over ranks. Then each
//     rank's optimizer applies the same update to the same weights, and the
//     replicas stay equal without ever sending weights again.
//
// If every rank's loss is the mean over its b examples, the averaged gradient
// is the gradient of the mean loss over all size*b examples: training on S
// ranks with b examples each follows (up to float rounding) one process
// training on the combined batch of S*b. Layers that look at the whole batch
// (BatchNorm's batch statistics) see only their rank's part.
//
// Gradients travel in buckets: consecutive parameters are packed into one
// contiguous buffer of up to `bucket_bytes` (a parameter larger than that
// gets a bucket of its own) and each bucket is one all-reduce, so a model
// with hundreds of small tensors costs a few messages per step. A parameter
// whose gradient is undefined on a rank (it took no part in that rank's
// backward pass) counts as zero there; it stays undefined only when it is
// undefined on every rank, so the optimizer still skips it exactly then.
//
// Example:
//
//   std::vector<Variable> params = model.Parameters();
//   DistributedDataParallel ddp(group, params);
//   CHECK_OK(ddp.BroadcastParameters());
//   SGD sgd(params, options);
//   for (...) {
//     sgd.ZeroGrad();
//     loss.Backward();
//     if (absl::Status s = ddp.AllReduceGradients(); !s.ok()) return s;
//     sgd.Step();
//   }

#ifndef DISTRIBUTED_DATA_PARALLEL_H_
#define DISTRIBUTED_DATA_PARALLEL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "autograd/variable.h"
#include "distributed/process_group.h"
#include "tensor/tensor.h"

namespace dive::distributed {

struct DataParallelOptions {
  // Target size of one all-reduce message.
  size_t bucket_bytes = size_t{4} << 20;
};

class DistributedDataParallel {
 public:
  // Synchronizes `params` (float32 leaves, as an optimizer takes them) over
  // `group`, which must outlive this object. CHECK-fails on an empty list,
  // an undefined or non-float32 parameter, or bucket_bytes == 0.
  DistributedDataParallel(ProcessGroup& group,
                          std::vector<autograd::Variable> params,
                          const DataParallelOptions& options = {});

  // BroadcastParameters()
  //
  // Overwrites every rank's parameters, in place, with those of `root`.
  absl::Status BroadcastParameters(int root = 0);

  // AllReduceGradients()
  //
  // Replaces each parameter's gradient by its mean over the ranks (see the
  // file comment for undefined gradients). The new gradients are fresh
  // tensors; the old ones are not written.
  absl::Status AllReduceGradients();

  // The parameter index ranges [begin, end) of the buckets, in order.
  struct Bucket {
    size_t begin = 0;
    size_t end = 0;
    size_t numel = 0;  // gradient elements in the bucket
  };
  const std::vector<Bucket>& buckets() const { return buckets_; }
  const std::vector<autograd::Variable>& params() const { return params_; }
  ProcessGroup& group() const { return group_; }

 private:
  ProcessGroup& group_;
  std::vector<autograd::Variable> params_;
  std::vector<Bucket> buckets_;
  // Reused between steps: one bucket's gradients, then one flag per
  // parameter of the bucket (1 where the gradient is defined).
  std::vector<float> buffer_;
};

// BroadcastTensors()
//
// Overwrites every rank's `tensors`, in place, with those of `root`, e.g. a
// model's buffers (`Module::NamedBuffers()`, which include BatchNorm's int64
// counters). Every rank must pass tensors of the same shapes and dtypes in
// the same order.
absl::Status BroadcastTensors(ProcessGroup& group,
                              const std::vector<Tensor>& tensors, int root = 0);

}  // namespace dive::distributed

#endif  // DISTRIBUTED_DATA_PARALLEL_H_
