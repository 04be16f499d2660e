#include "distributed/watchdog.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace dive::distributed {
namespace {

class Recorder {
 public:
  CollectiveWatchdog::TimeoutFn Fn() {
    return [this](const std::string& m) {
      std::lock_guard<std::mutex> lock(mu_);
      messages_.push_back(m);
    };
  }
  std::vector<std::string> messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> messages_;
};

TEST(CollectiveWatchdogTest, Message) {
  EXPECT_EQ(CollectiveWatchdog::Message(3, "AllReduceSum", absl::Seconds(300)),
            "rank 3: collective AllReduceSum did not complete within 300 s; "
            "another rank probably failed");
  EXPECT_EQ(CollectiveWatchdog::Message(0, "Barrier", absl::Milliseconds(1500)),
            "rank 0: collective Barrier did not complete within 1.5 s; "
            "another rank probably failed");
}

TEST(DescribePeersTest, NamesTheRanksThatAreNotInTheCollective) {
  std::vector<PeerState> peers(3);
  peers[0] = {1, true, 7, true};   // in collective 7: fine
  peers[1] = {2, true, 6, false};  // hung after collective 6
  peers[2] = {3, false, 0, false};
  EXPECT_EQ(DescribePeers(7, peers, absl::Seconds(5)),
            "rank 2 has not joined it (alive, in no collective, 1 behind: "
            "hung, or on another code path); rank 3 did not answer within 5 "
            "s (dead, or stuck inside MPI)");
  peers.resize(1);
  EXPECT_EQ(DescribePeers(7, peers, absl::Seconds(5)),
            "every other rank has joined it");
  peers[0].started = 9;  // ahead: also in it (or past it)
  EXPECT_EQ(DescribePeers(7, peers, absl::Seconds(5)),
            "every other rank has joined it");
}

TEST(CollectiveWatchdogTest, FiresOnceForACollectiveThatTakesTooLong) {
  Recorder recorder;
  CollectiveWatchdog watchdog(absl::Milliseconds(50), 1, recorder.Fn());
  {
    CollectiveWatchdog::Scope scope = watchdog.Watch("Broadcast");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  ASSERT_EQ(recorder.messages().size(), 1u);
  EXPECT_EQ(
      recorder.messages()[0],
      CollectiveWatchdog::Message(1, "Broadcast", absl::Milliseconds(50)));
}

TEST(CollectiveWatchdogTest, QuietForCollectivesThatComplete) {
  Recorder recorder;
  CollectiveWatchdog watchdog(absl::Milliseconds(100), 0, recorder.Fn());
  // Many short collectives back to back, together far longer than the
  // timeout: each one is timed on its own.
  for (int i = 0; i < 40; ++i) {
    CollectiveWatchdog::Scope scope = watchdog.Watch("AllReduceSum");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Idle time between collectives does not count either.
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  EXPECT_TRUE(recorder.messages().empty());
}

TEST(CollectiveWatchdogTest, SlowCollectiveAfterFastOnes) {
  Recorder recorder;
  CollectiveWatchdog watchdog(absl::Milliseconds(80), 2, recorder.Fn());
  for (int i = 0; i < 5; ++i) watchdog.Watch("AllReduceSum");
  {
    CollectiveWatchdog::Scope scope = watchdog.Watch("Barrier");
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
  }
  ASSERT_EQ(recorder.messages().size(), 1u);
  EXPECT_NE(recorder.messages()[0].find("collective Barrier"),
            std::string::npos);
}

TEST(CollectiveWatchdogTest, StopsPromptlyWhileWaitingForADeadline) {
  Recorder recorder;
  const auto start = std::chrono::steady_clock::now();
  {
    CollectiveWatchdog watchdog(absl::Seconds(100), 0, recorder.Fn());
    CollectiveWatchdog::Scope scope = watchdog.Watch("AllReduceSum");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }  // the thread sleeps until a deadline 100 s away; the destructor wakes it
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(recorder.messages().empty());
}

TEST(CollectiveWatchdogDeathTest, NestedScopes) {
  EXPECT_DEATH(
      {
        CollectiveWatchdog watchdog(absl::Seconds(10), 0,
                                    [](const std::string&) {});
        CollectiveWatchdog::Scope a = watchdog.Watch("AllReduceSum");
        CollectiveWatchdog::Scope b = watchdog.Watch("Barrier");
      },
      "Barrier started while AllReduceSum is in progress");
}

}  // namespace
}  // namespace dive::distributed
