// File: distributed/mpi_process_group.h
// -----------------------------------------------------------------------------
//
// `MpiProcessGroup`: a `ProcessGroup` on Open MPI, for processes launched by
// `mpirun` (on one machine, or on several with a host file):
//
//   mpirun -np 2 bazel-bin/models/lenet/train --threads=1
//
// `Create()` initializes MPI from the launcher's environment
// (MPI_Init_thread with MPI_THREAD_MULTIPLE, unless the program already
// initialized MPI), and works on a private duplicate of MPI_COMM_WORLD whose
// error handler is MPI_ERRORS_RETURN, so communication errors come back as
// `absl::Status` (Unavailable, with MPI's error string) instead of killing
// the process inside MPI. The destructor finalizes MPI if `Create` initialized
// it, so create one group per process and keep it for the process's life.
//
// Failures of other ranks:
//   * a rank that exits non-zero (or without finalizing) makes mpirun kill
//     every rank of the job, so the others stop within a second or so;
//   * a rank that stays alive but stops calling collectives (hung, or taking
//     a different code path) is caught by the watchdog
//     (`ProcessGroupOptions::collective_timeout`, see watchdog.h): a
//     collective that has not completed in time prints
//       "rank K: collective X did not complete within N s; another rank
//        probably failed"
//     and calls MPI_Abort, which ends the job with exit code 1. Before
//     that, it asks the other ranks where they are (a thread on each rank
//     answers on a communicator of its own) and names those that are not
//     in the collective:
//       "...; another rank probably failed: rank 1 has not joined it
//        (alive, in no collective, 1 behind: hung, or on another code
//        path)"
//     A rank that exits or is killed (SIGKILL) is noticed by mpirun, which
//     names it ("mpirun noticed that process rank 1 with PID ... exited on
//     signal 9 (Killed)") and ends the others within a second or so.
//
// Example:
//
//   ProcessGroupOptions options;
//   options.collective_timeout = absl::Seconds(60);
//   absl::StatusOr<std::unique_ptr<ProcessGroup>> group =
//       MpiProcessGroup::Create(options);

#ifndef DISTRIBUTED_MPI_PROCESS_GROUP_H_
#define DISTRIBUTED_MPI_PROCESS_GROUP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "distributed/process_group.h"
#include "distributed/watchdog.h"

namespace dive::distributed {

class MpiProcessGroup : public ProcessGroup {
 public:
  // Create()
  //
  // Joins the job this process was launched into (without a launcher: a job
  // of one, MPI's "singleton" mode). FailedPrecondition if MPI was already
  // finalized in this process; Unavailable if MPI cannot be initialized.
  static absl::StatusOr<std::unique_ptr<ProcessGroup>> Create(
      const ProcessGroupOptions& options = {});

  // Frees the communicator and, if `Create` initialized MPI, finalizes it
  // (under the watchdog: MPI_Finalize waits for every rank).
  ~MpiProcessGroup() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  absl::Status AllReduceSum(float* data, size_t n) override;
  absl::Status AllReduceSum(double* data, size_t n) override;
  // MPI_Iallreduce; the `Work` waits under the watchdog.
  std::unique_ptr<Work> AllReduceSumAsync(float* data, size_t n) override;
  // MPI_Iallreduce of 16-bit values with a user-defined bf16 sum.
  std::unique_ptr<Work> AllReduceSumBf16Async(uint16_t* data,
                                              size_t n) override;
  absl::Status BroadcastBytes(void* data, size_t nbytes, int root) override;
  absl::Status Barrier() override;
  [[noreturn]] void Abort(int exit_code) override;

 private:
  struct Comm;  // hides mpi.h from this header's users
  MpiProcessGroup(std::unique_ptr<Comm> comm, int rank, int size, bool owns_mpi,
                  bool thread_multiple, absl::Duration collective_timeout);

  // A watchdog scope for `collective` number `sequence` (0: a new one,
  // counted), or an empty one without a watchdog.
  class WatchScope;
  std::unique_ptr<WatchScope> Watch(const char* collective,
                                    uint64_t sequence = 0);

  // Counts a collective started (`Watch` does for the blocking ones) and
  // returns its number.
  uint64_t CountStart();
  // Opens the watchdog scope of a non-blocking collective's wait.
  std::function<std::shared_ptr<void>(uint64_t sequence)> WaitWatcher();
  // Answers other ranks' questions (see watchdog.h) until stopped.
  void Respond();
  // Asks every other rank where it is: DescribePeers(...) for a timeout in
  // collective number `sequence`.
  std::string AskPeers(uint64_t sequence);

  std::unique_ptr<Comm> comm_;
  const int rank_;
  const int size_;
  const bool owns_mpi_;
  const bool thread_multiple_;
  // Collectives started; the number of the one waited for now, 0 if none.
  std::atomic<uint64_t> started_{0};
  std::atomic<uint64_t> waiting_for_{0};
  std::atomic<bool> stop_responding_{false};
  std::thread responder_;
  std::unique_ptr<CollectiveWatchdog> watchdog_;
};

// CreateProcessGroup()
//
// The group of this launch: `MpiProcessGroup::Create(options)` when
// `LaunchedByMpi()`, else a `LocalProcessGroup`. Fails when MPI cannot be
// initialized.
absl::StatusOr<std::unique_ptr<ProcessGroup>> CreateProcessGroup(
    const ProcessGroupOptions& options = {});

}  // namespace dive::distributed

#endif  // DISTRIBUTED_MPI_PROCESS_GROUP_H_
