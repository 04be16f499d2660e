// File: train/replicas.h
// -----------------------------------------------------------------------------
//
// The data-parallel glue of the training loop (`TrainOptions::process_group`,
// distributed/): every rank starts from rank 0's replica, and the test set
// is evaluated in parts across the ranks.
//
// Example:
//
//   distributed::DistributedDataParallel ddp(group, model.Parameters());
//   if (absl::Status s = SyncReplicas(group, ddp, state); !s.ok()) return s;
//   absl::StatusOr<EvalResult> test =
//       EvaluateAcrossRanks(group, model, test_data, 28, 256);

#ifndef TRAIN_REPLICAS_H_
#define TRAIN_REPLICAS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "datasets/dataset.h"
#include "distributed/data_parallel.h"
#include "distributed/process_group.h"
#include "nn/module.h"
#include "train/checkpoint.h"
#include "train/evaluation.h"

namespace dive::train {

// Gives every rank rank 0's replica: parameters, buffers and training state
// (position, totals, optimizer state: only rank 0 reads the checkpoint it
// resumes from). OK at once for a group of one.
absl::Status SyncReplicas(distributed::ProcessGroup& group,
                          distributed::DistributedDataParallel& ddp,
                          TrainState& state);

// `Evaluate(...)` of rank 0's model, with the first `limit` examples of
// `data` split across the ranks: each evaluates its contiguous part with
// rank 0's buffers (BatchNorm's running statistics) and the confusion
// matrices are summed. No rank waits idle in a collective meanwhile, which
// the collective watchdog would count.
absl::StatusOr<EvalResult> EvaluateAcrossRanks(
    distributed::ProcessGroup& group, nn::Module& model,
    const data::Dataset& data, int64_t input_size, int64_t batch_size,
    int64_t limit = 0);

}  // namespace dive::train

#endif  // TRAIN_REPLICAS_H_
