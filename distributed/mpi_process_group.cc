#include "distributed/mpi_process_group.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_format.h"
#include "glog/logging.h"

namespace dive::distributed {

struct MpiProcessGroup::Comm {
  MPI_Comm comm = MPI_COMM_NULL;
};

namespace {

// MPI counts are ints; larger buffers go in pieces of this many elements.
constexpr size_t kMaxCount = size_t{1} << 30;

// Exit code of a job the watchdog aborts.
constexpr int kWatchdogExitCode = 1;

absl::Status MpiError(int rank, const char* call, int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  return absl::UnavailableError(
      absl::StrFormat("rank %d: %s failed: %s (MPI error %d)", rank, call,
                      std::string(text, length), code));
}

template <typename T>
absl::Status AllReduceSumImpl(MPI_Comm comm, int rank, MPI_Datatype type,
                              T* data, size_t n) {
  for (size_t done = 0; done < n; done += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, n - done));
    const int rc =
        MPI_Allreduce(MPI_IN_PLACE, data + done, count, type, MPI_SUM, comm);
    if (rc != MPI_SUCCESS) return MpiError(rank, "MPI_Allreduce", rc);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ProcessGroup>> MpiProcessGroup::Create(
    const ProcessGroupOptions& options) {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) {
    return absl::FailedPreconditionError(
        "MpiProcessGroup: MPI was already finalized in this process (create "
        "one group per process and keep it)");
  }
  int initialized = 0;
  MPI_Initialized(&initialized);
  int provided = MPI_THREAD_SINGLE;
  if (!initialized) {
    // MULTIPLE: the watchdog thread may call MPI_Abort while the main thread
    // is blocked in a collective.
    const int rc =
        MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS) return MpiError(-1, "MPI_Init_thread", rc);
  } else {
    MPI_Query_thread(&provided);
  }
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  auto comm = std::make_unique<Comm>();
  if (const int rc = MPI_Comm_dup(MPI_COMM_WORLD, &comm->comm);
      rc != MPI_SUCCESS) {
    return MpiError(rank, "MPI_Comm_dup", rc);
  }
  if (const int rc = MPI_Comm_set_errhandler(comm->comm, MPI_ERRORS_RETURN);
      rc != MPI_SUCCESS) {
    return MpiError(rank, "MPI_Comm_set_errhandler", rc);
  }
  VLOG(1) << "MpiProcessGroup: rank " << rank << " of " << size
          << ", thread level " << provided;
  return std::unique_ptr<ProcessGroup>(new MpiProcessGroup(
      std::move(comm), rank, size, /*owns_mpi=*/!initialized,
      provided >= MPI_THREAD_MULTIPLE, options.collective_timeout));
}

MpiProcessGroup::MpiProcessGroup(std::unique_ptr<Comm> comm, int rank, int size,
                                 bool owns_mpi, bool thread_multiple,
                                 absl::Duration collective_timeout)
    : comm_(std::move(comm)),
      rank_(rank),
      size_(size),
      owns_mpi_(owns_mpi),
      thread_multiple_(thread_multiple) {
  if (collective_timeout <= absl::ZeroDuration() ||
      collective_timeout == absl::InfiniteDuration()) {
    return;  // no watchdog
  }
  watchdog_ = std::make_unique<CollectiveWatchdog>(
      collective_timeout, rank_,
      [thread_multiple = thread_multiple_](const std::string& message) {
        LOG(ERROR) << message << "; aborting the job";
        std::fflush(stdout);
        std::fflush(stderr);
        // MPI_Abort should end every rank at once. Should MPI itself be
        // stuck, this process still ends.
        std::thread([] {
          std::this_thread::sleep_for(std::chrono::seconds(10));
          std::_Exit(kWatchdogExitCode);
        }).detach();
        if (thread_multiple) MPI_Abort(MPI_COMM_WORLD, kWatchdogExitCode);
        std::_Exit(kWatchdogExitCode);
      });
}

MpiProcessGroup::~MpiProcessGroup() {
  {
    std::unique_ptr<CollectiveWatchdog::Scope> scope = Watch("Finalize");
    MPI_Comm_free(&comm_->comm);
    if (owns_mpi_) MPI_Finalize();
  }
  watchdog_.reset();
}

std::unique_ptr<CollectiveWatchdog::Scope> MpiProcessGroup::Watch(
    const char* collective) {
  if (watchdog_ == nullptr) return nullptr;
  return std::make_unique<CollectiveWatchdog::Scope>(
      watchdog_->Watch(collective));
}

absl::Status MpiProcessGroup::AllReduceSum(float* data, size_t n) {
  auto scope = Watch("AllReduceSum");
  return AllReduceSumImpl(comm_->comm, rank_, MPI_FLOAT, data, n);
}

absl::Status MpiProcessGroup::AllReduceSum(double* data, size_t n) {
  auto scope = Watch("AllReduceSum");
  return AllReduceSumImpl(comm_->comm, rank_, MPI_DOUBLE, data, n);
}

absl::Status MpiProcessGroup::BroadcastBytes(void* data, size_t nbytes,
                                             int root) {
  CHECK(root >= 0 && root < size_)
      << "Broadcast: root " << root << " is not a rank of a group of size "
      << size_;
  auto scope = Watch("Broadcast");
  char* bytes = static_cast<char*>(data);
  for (size_t done = 0; done < nbytes; done += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, nbytes - done));
    const int rc = MPI_Bcast(bytes + done, count, MPI_BYTE, root, comm_->comm);
    if (rc != MPI_SUCCESS) return MpiError(rank_, "MPI_Bcast", rc);
  }
  return absl::OkStatus();
}

absl::Status MpiProcessGroup::Barrier() {
  auto scope = Watch("Barrier");
  const int rc = MPI_Barrier(comm_->comm);
  if (rc != MPI_SUCCESS) return MpiError(rank_, "MPI_Barrier", rc);
  return absl::OkStatus();
}

void MpiProcessGroup::Abort(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this satisfies noreturn
}

absl::StatusOr<std::unique_ptr<ProcessGroup>> CreateProcessGroup(
    const ProcessGroupOptions& options) {
  if (LaunchedByMpi()) return MpiProcessGroup::Create(options);
  return std::unique_ptr<ProcessGroup>(new LocalProcessGroup());
}

}  // namespace dive::distributed
