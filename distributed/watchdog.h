// File: distributed/watchdog.h
// -----------------------------------------------------------------------------
//
// `CollectiveWatchdog` bounds how long a collective may block. MPI cannot
// time out a collective: if one rank hangs (a deadlock, a stuck filesystem,
// a rank that skipped a collective) the others wait forever. Each collective
// runs inside a `Watch()` scope; a background thread checks the scope's age
// and, once it exceeds the timeout, calls `on_timeout` with
//
//   "rank K: collective X did not complete within N s; another rank
//    probably failed"
//
// once per scope. `MpiProcessGroup` passes a callback that prints the
// message and aborts the job (MPI_Abort), so mpirun tears every rank down.
// A rank that exits is noticed by mpirun directly; the watchdog is for ranks
// that stay alive but stop participating.
//
// Example:
//
//   CollectiveWatchdog watchdog(absl::Seconds(300), rank,
//                               [](const std::string& m) { ...abort... });
//   {
//     CollectiveWatchdog::Scope scope = watchdog.Watch("AllReduceSum");
//     MPI_Allreduce(...);
//   }

// Naming the failed rank: `MpiProcessGroup` answers, on every rank and from
// a thread of its own, how many collectives the rank has started and
// whether it is in one now. When a collective times out it asks every
// other rank and appends `DescribePeers(...)` to the message:
//
//   "rank 0: collective AllReduceSum did not complete within 2 s; another
//    rank probably failed: rank 1 has not joined it (alive, in no
//    collective, 1 behind: hung, or on another code path)"

#ifndef DISTRIBUTED_WATCHDOG_H_
#define DISTRIBUTED_WATCHDOG_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"

namespace dive::distributed {

// What another rank answered when a collective timed out.
struct PeerState {
  int rank = 0;
  bool answered = false;  // within the time allowed
  uint64_t started = 0;   // collectives it has started
  bool in_collective = false;
};

// DescribePeers()
//
// Names the ranks that are not in this rank's collective number `sequence`
// (counted from 1 in start order, the same on every rank): those that have
// started fewer, and those that did not answer ("dead, or stuck inside
// MPI"). "every other rank has joined it" when all have.
std::string DescribePeers(uint64_t sequence,
                          const std::vector<PeerState>& peers,
                          absl::Duration answer_time);

class CollectiveWatchdog {
 public:
  using TimeoutFn = std::function<void(const std::string& message)>;

  // Starts the watchdog thread. CHECK-fails unless `timeout` is positive.
  CollectiveWatchdog(absl::Duration timeout, int rank, TimeoutFn on_timeout);
  // Stops the thread (an open scope is no longer watched).
  ~CollectiveWatchdog();
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  // Marks one collective in progress while alive. Scopes do not nest.
  class Scope {
   public:
    Scope(Scope&& other) noexcept : watchdog_(other.watchdog_) {
      other.watchdog_ = nullptr;
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    Scope& operator=(Scope&&) = delete;
    ~Scope() {
      if (watchdog_ != nullptr) watchdog_->End();
    }

   private:
    friend class CollectiveWatchdog;
    explicit Scope(CollectiveWatchdog* watchdog) : watchdog_(watchdog) {}
    CollectiveWatchdog* watchdog_;
  };

  // Watch()
  //
  // Starts watching `collective` (a string literal, used in the message);
  // CHECK-fails if another scope is open.
  Scope Watch(const char* collective);

  absl::Duration timeout() const { return timeout_; }

  // Message()
  //
  // The text passed to `on_timeout` for `collective`.
  static std::string Message(int rank, const char* collective,
                             absl::Duration timeout);

 private:
  void End();
  void Run();

  const absl::Duration timeout_;
  const int rank_;
  const TimeoutFn on_timeout_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  // The open scope, if any: its collective, start and sequence number.
  const char* active_ = nullptr;
  std::chrono::steady_clock::time_point started_;
  uint64_t sequence_ = 0;

  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace dive::distributed

#endif  // DISTRIBUTED_WATCHDOG_H_
