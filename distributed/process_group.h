// File: distributed/process_group.h
// -----------------------------------------------------------------------------
//
// A `ProcessGroup` is the set of processes ("ranks") that train one model
// together, and the collectives they use to stay in step: every rank calls
// the same collectives in the same order with buffers of the same sizes, and
// each call returns when all ranks have contributed. It is the small
// interface data-parallel training needs from a communication engine; this
// package implements it with
//
//   * `MpiProcessGroup` (mpi_process_group.h): Open MPI, for processes
//     launched by `mpirun` on one or several machines;
//   * `LocalProcessGroup`: a single process (size 1), where every collective
//     is a no-op, so code written for a group runs unchanged without mpirun.
//
// Another engine (Gloo, NCCL) would be one more implementation.
//
// `CreateProcessGroup()` (mpi_process_group.h, in //distributed:mpi, so that
// code which never runs under mpirun does not link MPI) picks the
// implementation from the environment:
// MPI when this process was started by a launcher (`mpirun` sets
// OMPI_COMM_WORLD_SIZE; PMIx launchers such as `srun --mpi=pmix` set
// PMIX_RANK), the local group otherwise.
//
// Example:
//
//   absl::StatusOr<std::unique_ptr<ProcessGroup>> group =
//       CreateProcessGroup();
//   if (!group.ok()) return group.status();
//   std::vector<float> x = {1.0f * (*group)->rank()};
//   absl::Status s = (*group)->AllReduceSum(x.data(), x.size());
//   // x[0] == 0 + 1 + ... + (size - 1) on every rank.
//
// A group is used from one thread at a time. Collectives return a non-OK
// status when the engine reports an error; a collective that never completes
// (another rank died or is stuck) is ended by the engine's watchdog, which
// aborts the whole job with a message naming the rank and the collective
// (see `ProcessGroupOptions::collective_timeout`).

#ifndef DISTRIBUTED_PROCESS_GROUP_H_
#define DISTRIBUTED_PROCESS_GROUP_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dive::distributed {

// Work
//
// An operation started by one of `ProcessGroup`'s `...Async` calls, which
// return at once: the buffer passed must stay untouched until `Wait()`
// returns (or the `Work` is destroyed, which waits).
class Work {
 public:
  virtual ~Work() = default;
  // Wait()
  //
  // Blocks until the operation is complete and returns its status (again
  // on later calls). Under the collective watchdog, like the blocking calls.
  virtual absl::Status Wait() = 0;
  // Poll()
  //
  // Lets the engine move the operation on (Open MPI, without a progress
  // thread, advances a non-blocking collective only inside MPI calls) and
  // returns whether it is complete. Never blocks.
  virtual bool Poll() = 0;
};

// A `Work` that was complete when it was made.
class CompletedWork : public Work {
 public:
  explicit CompletedWork(absl::Status status) : status_(std::move(status)) {}
  absl::Status Wait() override { return status_; }
  bool Poll() override { return true; }

 private:
  absl::Status status_;
};

struct ProcessGroupOptions {
  // A collective that has not completed after this long aborts the job with
  //   "rank K: collective X did not complete within N s; another rank
  //    probably failed".
  // MPI itself never times out a collective, so without this a rank that
  // hangs (rather than exits, which mpirun notices) would stall the others
  // forever. Must exceed the longest time one rank may spend between two
  // collectives while the others wait (e.g. rank 0 writing a checkpoint).
  // Zero, negative or infinite: no watchdog.
  absl::Duration collective_timeout = absl::Seconds(300);
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  // This process's index in [0, size()).
  virtual int rank() const = 0;
  // The number of processes.
  virtual int size() const = 0;
  // The engine, e.g. "mpi" or "local".
  virtual std::string backend() const = 0;

  // AllReduceSum()
  //
  // Replaces `data[0, n)` on every rank by its elementwise sum over ranks.
  virtual absl::Status AllReduceSum(float* data, size_t n) = 0;
  virtual absl::Status AllReduceSum(double* data, size_t n) = 0;

  // AllReduceSumAsync()
  //
  // `AllReduceSum`, started without waiting for it: e.g. MPI_Iallreduce.
  // Every rank must start the same collectives in the same order, blocking
  // and non-blocking alike. The default runs the blocking call.
  virtual std::unique_ptr<Work> AllReduceSumAsync(float* data, size_t n);

  // AllReduceSumBf16Async()
  //
  // The elementwise sum over ranks of `data[0, n)`, bfloat16 values given
  // by their bits (dive::FloatToBf16), sent as 2 bytes each; every partial
  // sum is rounded to bfloat16, as NCCL sums bf16. The default, for engines
  // without it, sums in float32 (sending 4 bytes per value) and rounds the
  // result.
  virtual std::unique_ptr<Work> AllReduceSumBf16Async(uint16_t* data,
                                                      size_t n);

  // AllReduceMean()
  //
  // `AllReduceSum`, then divides by size().
  absl::Status AllReduceMean(float* data, size_t n);

  // Broadcast()
  //
  // Copies `data[0, n)` of rank `root` into `data` on every other rank.
  // CHECK-fails unless 0 <= root < size().
  absl::Status Broadcast(float* data, size_t n, int root) {
    return BroadcastBytes(data, n * sizeof(float), root);
  }
  virtual absl::Status BroadcastBytes(void* data, size_t nbytes, int root) = 0;

  // Barrier()
  //
  // Returns when every rank has called it.
  virtual absl::Status Barrier() = 0;

  // Abort()
  //
  // Ends this process, and with it the whole job, with `exit_code`: for a
  // rank that cannot go on (e.g. it failed to write a checkpoint) and must
  // not leave the others waiting in their next collective.
  [[noreturn]] virtual void Abort(int exit_code) = 0;

 protected:
  ProcessGroup() = default;
};

// A group of one process: collectives leave the data unchanged.
class LocalProcessGroup : public ProcessGroup {
 public:
  LocalProcessGroup() = default;

  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  absl::Status AllReduceSum(float*, size_t) override {
    return absl::OkStatus();
  }
  absl::Status AllReduceSum(double*, size_t) override {
    return absl::OkStatus();
  }
  std::unique_ptr<Work> AllReduceSumBf16Async(uint16_t*, size_t) override {
    return std::make_unique<CompletedWork>(absl::OkStatus());
  }
  absl::Status BroadcastBytes(void* data, size_t nbytes, int root) override;
  absl::Status Barrier() override { return absl::OkStatus(); }
  [[noreturn]] void Abort(int exit_code) override;
};

// LaunchedByMpi()
//
// Whether an MPI launcher started this process (OMPI_COMM_WORLD_SIZE or
// PMIX_RANK is set).
bool LaunchedByMpi();

}  // namespace dive::distributed

#endif  // DISTRIBUTED_PROCESS_GROUP_H_
