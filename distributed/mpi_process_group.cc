#include "distributed/mpi_process_group.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "tensor/bf16.h"

namespace dive::distributed {

struct MpiProcessGroup::Comm {
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm status_comm = MPI_COMM_NULL;  // where-are-you questions
  MPI_Op bf16_sum = MPI_OP_NULL;  // AllReduceSumBf16Async's reduction
};

namespace {

// MPI counts are ints; larger buffers go in pieces of this many elements.
constexpr size_t kMaxCount = size_t{1} << 30;

// Exit code of a job the watchdog aborts.
constexpr int kWatchdogExitCode = 1;

// Tags on status_comm; how long a timed-out rank waits for answers, and
// how often the answering thread looks for questions.
constexpr int kQueryTag = 1, kAnswerTag = 2;
constexpr absl::Duration kAnswerTime = absl::Seconds(5);
constexpr std::chrono::milliseconds kRespondPoll(50);

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

// The MPI_Op of AllReduceSumBf16Async: inout += in, rounded to bf16.
void Bf16Sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const uint16_t* a = static_cast<const uint16_t*>(in);
  uint16_t* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) {
    b[i] = FloatToBf16(Bf16ToFloat(a[i]) + Bf16ToFloat(b[i]));
  }
}

// Non-blocking all-reduces (one request per kMaxCount piece). Destroying
// one that is not complete waits for it: its buffer is in MPI's hands.
class MpiWork : public Work {
 public:
  // `watch(sequence)` opens the watchdog scope of a wait.
  using WatchFn = std::function<std::shared_ptr<void>(uint64_t sequence)>;
  MpiWork(int rank, uint64_t sequence, WatchFn watch)
      : rank_(rank), sequence_(sequence), watch_(std::move(watch)) {}
  ~MpiWork() override {
    if (!done_) Wait().IgnoreError();
  }

  // Starts one piece; a failure to start completes the work with it.
  void Start(MPI_Comm comm, MPI_Datatype type, MPI_Op op, void* data,
             int count) {
    if (done_) return;
    requests_.push_back(MPI_REQUEST_NULL);
    const int rc = MPI_Iallreduce(MPI_IN_PLACE, data, count, type, op, comm,
                                  &requests_.back());
    if (rc != MPI_SUCCESS) {
      requests_.pop_back();
      Finish(MpiError(rank_, "MPI_Iallreduce", rc));
    }
  }

  absl::Status Wait() override {
    if (done_) return status_;
    const std::shared_ptr<void> scope = watch_(sequence_);
    const int rc = MPI_Waitall(static_cast<int>(requests_.size()),
                               requests_.data(), MPI_STATUSES_IGNORE);
    Finish(rc == MPI_SUCCESS ? absl::OkStatus()
                             : MpiError(rank_, "MPI_Waitall", rc));
    return status_;
  }

  bool Poll() override {
    if (done_) return true;
    int flag = 0;
    const int rc = MPI_Testall(static_cast<int>(requests_.size()),
                               requests_.data(), &flag, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) {
      Finish(MpiError(rank_, "MPI_Testall", rc));
    } else if (flag) {
      Finish(absl::OkStatus());
    }
    return done_;
  }

 private:
  void Finish(absl::Status status) {
    // After an error the other requests may never complete; MPI leaves
    // them to the job's teardown.
    done_ = true;
    status_ = std::move(status);
    requests_.clear();
  }

  const int rank_;
  const uint64_t sequence_;
  const WatchFn watch_;
  std::vector<MPI_Request> requests_;
  bool done_ = false;
  absl::Status status_;
};

template <typename T>
std::unique_ptr<Work> StartAllReduce(MPI_Comm comm, int rank,
                                     uint64_t sequence, MpiWork::WatchFn watch,
                                     MPI_Datatype type, MPI_Op op, T* data,
                                     size_t n) {
  auto work = std::make_unique<MpiWork>(rank, sequence, std::move(watch));
  for (size_t done = 0; done < n; done += kMaxCount) {
    work->Start(comm, type, op, data + done,
                static_cast<int>(std::min(kMaxCount, n - done)));
  }
  return work;
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
  if (const int rc = MPI_Comm_dup(comm->comm, &comm->status_comm);
      rc != MPI_SUCCESS) {
    return MpiError(rank, "MPI_Comm_dup", rc);
  }
  if (const int rc = MPI_Op_create(&Bf16Sum, /*commute=*/1, &comm->bf16_sum);
      rc != MPI_SUCCESS) {
    return MpiError(rank, "MPI_Op_create", rc);
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
  // The answering thread needs MPI from two threads at once.
  const bool ask = thread_multiple_ && size_ > 1;
  if (ask) responder_ = std::thread([this] { Respond(); });
  watchdog_ = std::make_unique<CollectiveWatchdog>(
      collective_timeout, rank_,
      [this, thread_multiple = thread_multiple_,
       ask](const std::string& timed_out) {
        const uint64_t sequence = waiting_for_.load();
        const std::string message =
            ask && sequence > 0
                ? absl::StrCat(timed_out, ": ", AskPeers(sequence))
                : timed_out;
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
    std::unique_ptr<WatchScope> scope = Watch("Finalize");
    if (responder_.joinable()) {
      stop_responding_ = true;
      responder_.join();
    }
    MPI_Op_free(&comm_->bf16_sum);
    MPI_Comm_free(&comm_->status_comm);
    MPI_Comm_free(&comm_->comm);
    if (owns_mpi_) MPI_Finalize();
  }
  watchdog_.reset();
}

// The watchdog's scope, and the number of the collective waited for.
class MpiProcessGroup::WatchScope {
 public:
  WatchScope(CollectiveWatchdog& watchdog, const char* collective,
             uint64_t sequence, std::atomic<uint64_t>& waiting_for)
      : waiting_for_(waiting_for),
        scope_((waiting_for.store(sequence), watchdog.Watch(collective))) {}
  ~WatchScope() { waiting_for_.store(0); }

 private:
  std::atomic<uint64_t>& waiting_for_;
  CollectiveWatchdog::Scope scope_;
};

uint64_t MpiProcessGroup::CountStart() { return ++started_; }

std::unique_ptr<MpiProcessGroup::WatchScope> MpiProcessGroup::Watch(
    const char* collective, uint64_t sequence) {
  if (sequence == 0) sequence = CountStart();
  if (watchdog_ == nullptr) return nullptr;
  return std::make_unique<WatchScope>(*watchdog_, collective, sequence,
                                      waiting_for_);
}

void MpiProcessGroup::Respond() {
  uint64_t question = 0;
  MPI_Request request = MPI_REQUEST_NULL;
  const auto listen = [&] {
    return MPI_Irecv(&question, 1, MPI_UINT64_T, MPI_ANY_SOURCE, kQueryTag,
                     comm_->status_comm, &request) == MPI_SUCCESS;
  };
  if (!listen()) return;
  while (!stop_responding_) {
    int asked = 0;
    MPI_Status status;
    if (MPI_Test(&request, &asked, &status) != MPI_SUCCESS) return;
    if (!asked) {
      std::this_thread::sleep_for(kRespondPoll);
      continue;
    }
    // Small enough to go eagerly: never blocks, even if the asker died.
    uint64_t answer[2] = {started_.load(), waiting_for_.load() != 0 ? 1u : 0u};
    MPI_Send(answer, 2, MPI_UINT64_T, status.MPI_SOURCE, kAnswerTag,
             comm_->status_comm);
    if (!listen()) return;
  }
  MPI_Cancel(&request);
  MPI_Wait(&request, MPI_STATUS_IGNORE);
}

std::string MpiProcessGroup::AskPeers(uint64_t sequence) {
  std::vector<uint64_t> answers(2 * size_, 0);
  std::vector<MPI_Request> sends(size_, MPI_REQUEST_NULL);
  std::vector<MPI_Request> receives(size_, MPI_REQUEST_NULL);
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    MPI_Isend(&sequence, 1, MPI_UINT64_T, r, kQueryTag, comm_->status_comm,
              &sends[r]);
    MPI_Irecv(&answers[2 * r], 2, MPI_UINT64_T, r, kAnswerTag,
              comm_->status_comm, &receives[r]);
  }
  std::vector<PeerState> peers;
  std::vector<bool> answered(size_, false);
  const absl::Time deadline = absl::Now() + kAnswerTime;
  int pending = size_ - 1;
  while (pending > 0 && absl::Now() < deadline) {
    for (int r = 0; r < size_; ++r) {
      if (r == rank_ || answered[r]) continue;
      int flag = 0;
      if (MPI_Test(&receives[r], &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS &&
          flag) {
        answered[r] = true;
        --pending;
      }
    }
    if (pending > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Unanswered requests are left to MPI_Abort, which comes next.
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    peers.push_back({r, answered[r], answers[2 * r], answers[2 * r + 1] != 0});
  }
  return DescribePeers(sequence, peers, kAnswerTime);
}

absl::Status MpiProcessGroup::AllReduceSum(float* data, size_t n) {
  auto scope = Watch("AllReduceSum");
  return AllReduceSumImpl(comm_->comm, rank_, MPI_FLOAT, data, n);
}

absl::Status MpiProcessGroup::AllReduceSum(double* data, size_t n) {
  auto scope = Watch("AllReduceSum");
  return AllReduceSumImpl(comm_->comm, rank_, MPI_DOUBLE, data, n);
}

std::function<std::shared_ptr<void>(uint64_t)> MpiProcessGroup::WaitWatcher() {
  return [this](uint64_t sequence) -> std::shared_ptr<void> {
    return Watch("AllReduceSum", sequence);
  };
}

std::unique_ptr<Work> MpiProcessGroup::AllReduceSumAsync(float* data,
                                                         size_t n) {
  return StartAllReduce(comm_->comm, rank_, CountStart(), WaitWatcher(),
                        MPI_FLOAT, MPI_SUM, data, n);
}

std::unique_ptr<Work> MpiProcessGroup::AllReduceSumBf16Async(uint16_t* data,
                                                             size_t n) {
  return StartAllReduce(comm_->comm, rank_, CountStart(), WaitWatcher(),
                        MPI_UINT16_T, comm_->bf16_sum, data, n);
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
