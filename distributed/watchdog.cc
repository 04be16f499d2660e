#include "distributed/watchdog.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"

namespace dive::distributed {

std::string DescribePeers(uint64_t sequence,
                          const std::vector<PeerState>& peers,
                          absl::Duration answer_time) {
  std::vector<std::string> failed;
  for (const PeerState& p : peers) {
    if (!p.answered) {
      failed.push_back(absl::StrFormat(
          "rank %d did not answer within %g s (dead, or stuck inside MPI)",
          p.rank, absl::ToDoubleSeconds(answer_time)));
    } else if (p.started < sequence) {
      failed.push_back(absl::StrFormat(
          "rank %d has not joined it (alive, %s, %d behind: hung, or on "
          "another code path)",
          p.rank, p.in_collective ? "in an earlier collective" : "in no collective",
          sequence - p.started));
    }
  }
  if (failed.empty()) return "every other rank has joined it";
  return absl::StrJoin(failed, "; ");
}

CollectiveWatchdog::CollectiveWatchdog(absl::Duration timeout, int rank,
                                       TimeoutFn on_timeout)
    : timeout_(timeout), rank_(rank), on_timeout_(std::move(on_timeout)) {
  CHECK(timeout_ > absl::ZeroDuration())
      << "CollectiveWatchdog: timeout must be positive, got " << timeout_;
  CHECK(on_timeout_) << "CollectiveWatchdog: no timeout callback";
  thread_ = std::thread([this] { Run(); });
}

CollectiveWatchdog::~CollectiveWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::string CollectiveWatchdog::Message(int rank, const char* collective,
                                        absl::Duration timeout) {
  return absl::StrFormat(
      "rank %d: collective %s did not complete within %g s; another rank "
      "probably failed",
      rank, collective, absl::ToDoubleSeconds(timeout));
}

CollectiveWatchdog::Scope CollectiveWatchdog::Watch(const char* collective) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    CHECK(active_ == nullptr)
        << "CollectiveWatchdog: " << collective << " started while " << active_
        << " is in progress";
    active_ = collective;
    started_ = std::chrono::steady_clock::now();
    ++sequence_;
  }
  cv_.notify_all();
  return Scope(this);
}

void CollectiveWatchdog::End() {
  std::lock_guard<std::mutex> lock(mu_);
  active_ = nullptr;
  // No notify: the thread wakes at the deadline, sees nothing open and goes
  // back to waiting. Collectives end far more often than they time out.
}

void CollectiveWatchdog::Run() {
  // Clamped so that start + timeout cannot overflow the clock.
  const auto timeout = absl::ToChronoNanoseconds(
      std::min(timeout_, absl::Hours(24 * 365 * 100)));
  std::unique_lock<std::mutex> lock(mu_);
  uint64_t fired = 0;  // sequence number of the scope already reported
  while (!stop_) {
    if (active_ == nullptr || sequence_ == fired) {
      cv_.wait(lock);
      continue;
    }
    const uint64_t sequence = sequence_;
    const auto deadline = started_ + timeout;
    if (std::chrono::steady_clock::now() < deadline) {
      cv_.wait_until(lock, deadline);
      continue;  // re-examine: the scope may have ended or been replaced
    }
    fired = sequence;
    const std::string message = Message(rank_, active_, timeout_);
    lock.unlock();
    on_timeout_(message);
    lock.lock();
  }
}

}  // namespace dive::distributed
