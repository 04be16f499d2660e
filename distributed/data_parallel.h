// File: distributed/data_parallel.h
// -----------------------------------------------------------------------------
//
// `DistributedDataParallel` keeps the replicas of a model on the ranks of a
// `ProcessGroup` identical while each rank trains on its own part of every
// batch, like PyTorch's DistributedDataParallel:
//
//   * `BroadcastParameters()` copies rank 0's parameters (and, through
//     `BroadcastTensors`, buffers) to every rank before training, so all
//     replicas start equal whatever their own initialization;
//   * the gradients are averaged over the ranks, and `AllReduceGradients()`,
//     called between `Backward()` and the optimizer's `Step()`, returns once
//     every gradient is replaced by its mean. Then each rank's optimizer
//     applies the same update to the same weights, and the replicas stay
//     equal without ever sending weights again.
//
// If every rank's loss is the mean over its b examples, the averaged gradient
// is the gradient of the mean loss over all size*b examples: training on S
// ranks with b examples each follows (up to float rounding) one process
// training on the combined batch of S*b. Layers that look at the whole batch
// see only their rank's part, unless they synchronize themselves
// (distributed/sync_batch_norm.h).
//
// Gradients travel in buckets, filled in the order the backward pass
// produces them, which is roughly the reverse of the parameters' order:
// from the last parameter back, consecutive parameters are packed into one
// contiguous buffer of up to `bucket_bytes` (a parameter larger than that
// gets a bucket of its own), and each bucket is one all-reduce, so a model
// with hundreds of small tensors costs a few messages per step.
//
// Overlap (`DataParallelOptions::overlap`, the default): a hook on each
// parameter (`Variable::RegisterPostAccumulateGradHook`) copies its gradient
// into its bucket as soon as the backward pass has completed it, and a
// bucket whose gradients are all in starts its all-reduce at once
// (`ProcessGroup::AllReduceSumAsync`, MPI_Iallreduce), so communication runs
// while the backward pass goes on through earlier layers. Buckets start in
// bucket order on every rank (a full bucket waits for the ones before it),
// as collectives must. `AllReduceGradients()` starts what is left (buckets
// with a parameter that got no gradient), waits for all and unpacks the
// means. Without overlap it packs and starts every bucket after the backward
// pass. Both send the same buffers through the same calls in the same order,
// so for the same bucket layout they give bit-identical gradients. With
// overlap, a gradient is taken when its backward pass completes it: a change
// made to it before `AllReduceGradients()` is not seen, except that a second
// backward pass before `AllReduceGradients()` (gradient accumulation) makes
// it send every bucket again from the accumulated gradients.
//
// bf16 compression (`bf16_compress`, PyTorch's `bf16_compress_hook`): each
// bucket is divided by the number of ranks, rounded to bfloat16 and summed
// in bfloat16 (`AllReduceSumBf16Async`), half the bytes; the means come back
// to float32 with bf16's 8-bit precision.
//
// A parameter whose gradient is undefined on a rank (it took no part in that
// rank's backward pass) counts as zero there; it stays undefined only when
// it is undefined on every rank, so the optimizer still skips it exactly
// then.
//
// Example:
//
//   std::vector<Variable> params = model.Parameters();
//   DistributedDataParallel ddp(group, params);
//   CHECK_OK(ddp.BroadcastParameters());
//   SGD sgd(params, options);
//   for (...) {
//     sgd.ZeroGrad();
//     loss.Backward();   // starts the buckets' all-reduces as they fill
//     if (absl::Status s = ddp.AllReduceGradients(); !s.ok()) return s;
//     sgd.Step();
//   }

#ifndef DISTRIBUTED_DATA_PARALLEL_H_
#define DISTRIBUTED_DATA_PARALLEL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "autograd/variable.h"
#include "distributed/process_group.h"
#include "tensor/tensor.h"

namespace dive::distributed {

struct DataParallelOptions {
  // Target size of one all-reduce message (of float32 gradients): PyTorch's
  // default bucket_cap_mb of 25 MiB.
  size_t bucket_bytes = size_t{25} << 20;
  // Start each bucket's all-reduce during the backward pass (file comment).
  bool overlap = true;
  // Send the gradients as bfloat16 (file comment).
  bool bf16_compress = false;
};

class DistributedDataParallel {
 public:
  // Synchronizes `params` (float32 leaves, as an optimizer takes them) over
  // `group`, which must outlive this object. CHECK-fails on an empty list,
  // an undefined or non-float32 parameter, or bucket_bytes == 0. With
  // overlap on a group of several ranks, hooks the parameters until
  // destroyed.
  DistributedDataParallel(ProcessGroup& group,
                          std::vector<autograd::Variable> params,
                          const DataParallelOptions& options = {});
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  // BroadcastParameters()
  //
  // Overwrites every rank's parameters, in place, with those of `root`.
  absl::Status BroadcastParameters(int root = 0);

  // AllReduceGradients()
  //
  // Replaces each parameter's gradient by its mean over the ranks (see the
  // file comment for undefined gradients), waiting for the all-reduces the
  // backward pass started. The new gradients are fresh tensors; the old ones
  // are not written.
  absl::Status AllReduceGradients();

  // The buckets, in the order they are sent: each holds the parameters
  // [begin, end) (indices into `params()`), the first bucket the last
  // parameters.
  struct Bucket {
    size_t begin = 0;
    size_t end = 0;
    size_t numel = 0;  // gradient elements in the bucket
  };
  const std::vector<Bucket>& buckets() const { return buckets_; }
  const std::vector<autograd::Variable>& params() const { return params_; }
  ProcessGroup& group() const { return group_; }

  // Bytes this rank has handed to all-reduces since construction (gradients
  // and flags; 2 bytes a value with bf16 compression, 4 without). A ring
  // all-reduce sends 2 (size - 1) / size times this over each rank's link.
  uint64_t bytes_all_reduced() const { return bytes_all_reduced_; }
  // How many buckets the last `AllReduceGradients()` found started by the
  // backward pass (with overlap).
  size_t buckets_started_in_backward() const {
    return buckets_started_in_backward_;
  }

 private:
  struct BucketState {
    // The bucket's gradients, then one flag per parameter (1 where the
    // gradient is defined).
    std::vector<float> buffer;
    std::vector<uint16_t> compressed;  // with bf16_compress
    size_t waiting = 0;  // parameters whose gradient is not packed yet
    std::unique_ptr<Work> work;  // once started
  };

  // The hook: parameter `i`'s gradient is complete.
  void OnGradient(size_t i, const Tensor& grad);
  // Copies `grad` (undefined: zeros) into parameter `i`'s place.
  void Pack(size_t i, const Tensor& grad);
  // Starts the buckets from `next_start_` on whose gradients are all in.
  void StartReady();
  void Start(size_t bucket);
  // Waits for every started bucket; the first error.
  absl::Status WaitAll();
  // Forgets this step: nothing packed, nothing started.
  void Reset();

  ProcessGroup& group_;
  std::vector<autograd::Variable> params_;
  const bool overlap_;
  const bool bf16_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // per parameter
  std::vector<size_t> offset_;     // per parameter, in its bucket's buffer
  std::vector<BucketState> state_;
  std::vector<bool> packed_;  // per parameter, this step
  size_t next_start_ = 0;     // buckets [0, next_start_) are started
  bool repack_ = false;       // a gradient changed after it was packed
  uint64_t bytes_all_reduced_ = 0;
  size_t buckets_started_in_backward_ = 0;
  std::vector<autograd::HookHandle> hooks_;
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
