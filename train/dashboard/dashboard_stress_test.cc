// No client of the dashboard can slow training, make it fail or grow its
// memory: a million-step history, slow polls, floods of connections under
// the usual open-file limit, a stop during requests. What it serves is
// dashboard_test.cc's; whole trainers under attack are
// dashboard_hostile_test.sh's.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "train/dashboard/dashboard.h"
#include "train/dashboard/dashboard_fixture.h"
#include "train/dashboard/test_client.h"
#include "train/observer.h"

namespace dive::train {
namespace {

using ::dive::train::testing::Body;
using ::dive::train::testing::Clock;
using ::dive::train::testing::DashboardTest;
using ::dive::train::testing::Flood;
using ::dive::train::testing::SecondsSince;
using ::dive::train::testing::Step;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// The process's open file descriptors.
int OpenFds() {
  int n = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)entry;
    ++n;
  }
  return n;
}

// The process's resident memory in bytes.
int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

// GET / on 127.0.0.1:`port`, again and again until `stopped`; failures
// (the server gone) are no matter.
void GetUntil(int port, const std::atomic<bool>& stopped) {
  const std::string get =
      absl::StrCat("GET / HTTP/1.1\r\nHost: 127.0.0.1:", port,
                   "\r\nConnection: close\r\n\r\n");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char buffer[4096];
  while (!stopped) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        send(fd, get.data(), get.size(), MSG_NOSIGNAL) > 0) {
      while (recv(fd, buffer, sizeof(buffer), 0) > 0) {
      }
    }
    close(fd);
  }
}

// A million steps (34 bytes a step used to be kept forever, and the first
// poll was the whole of them: 41 MB of JSON): the first poll is a few
// hundred KB and the memory stays as it was after the first thousands.
TEST_F(DashboardTest, AMillionStepsGiveABoundedFirstPoll) {
  constexpr int64_t kSteps = 1000000;
  int64_t resident = 0;
  for (int64_t step = 1; step <= kSteps; ++step) {
    // Numbers with all their digits, as a real run's.
    ASSERT_TRUE(Step(*dashboard_, step, 2.3 / (1 + step % 997 * 1e-3),
                     (step % 256) / 256.0)
                    .ok());
    if (step == 10000) resident = ResidentBytes();
  }
  EXPECT_LT(ResidentBytes() - resident, 4 << 20);

  const std::string first = Get("/api/metrics?since=-1");
  EXPECT_THAT(first, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_LT(Body(first).size(), 250u << 10);
  EXPECT_THAT(first, HasSubstr("\"global_step\":1000000,"));
  EXPECT_THAT(first, HasSubstr("\"full\":true,\"buckets\":[[1,"));
  EXPECT_THAT(first, HasSubstr(",[1000000,2.27948464,0.25,0.100000001]]"));
  // The latest 2,048 steps whole.
  EXPECT_THAT(first, HasSubstr("],\"steps\":[[997953,"));
  // A page that has them all: the new steps alone.
  ASSERT_TRUE(Step(*dashboard_, kSteps + 1).ok());
  EXPECT_THAT(dashboard_->MetricsJson(kSteps),
              HasSubstr("\"full\":false,\"buckets\":[],"
                        "\"steps\":[[1000001,0.5,0.5,0.100000001]]"));
  // One that fell behind the latest steps: the whole (bounded) history.
  EXPECT_THAT(dashboard_->MetricsJson(900000), HasSubstr("\"full\":true"));
}

// The JSON of a slow poll (a 2 MB title to quote, every character
// escaped) is built outside the lock the training thread takes: OnStep,
// OnEpoch and SetState do not wait for it.
TEST(DashboardLockTest, TrainingNeverWaitsForAPoll) {
  absl::StatusOr<std::unique_ptr<Dashboard>> d = Dashboard::Start(
      {.port = 0, .title = std::string(2 << 20, '"')}, nullptr);
  ASSERT_TRUE(d.ok()) << d.status();
  Dashboard& dashboard = **d;
  const Clock::time_point start = Clock::now();
  dashboard.MetricsJson(-1);
  const double poll_seconds = SecondsSince(start);

  std::atomic<bool> done{false};
  std::atomic<int> polls{0};
  std::thread poller([&] {
    while (!done) {
      dashboard.MetricsJson(-1);
      ++polls;
    }
  });
  double slowest = 0;
  const auto timed = [&slowest](auto&& call) {
    const Clock::time_point t = Clock::now();
    call();
    slowest = std::max(slowest, SecondsSince(t));
  };
  int64_t step = 0;
  while (polls < 3) {
    timed([&] { ASSERT_TRUE(Step(dashboard, ++step).ok()); });
    if (step % 100 == 0) {
      timed([&] {
        TrainState state;
        ASSERT_TRUE(dashboard.OnEpoch(state, EpochMetrics{.epoch = 1}).ok());
      });
      timed([&] { dashboard.SetState("training"); });
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  done = true;
  poller.join();
  EXPECT_LT(slowest, poll_seconds / 2)
      << "a poll takes " << poll_seconds << " s";
  // Every step is published, those that found the lock taken with the next
  // call.
  dashboard.SetState("finished");
  EXPECT_THAT(dashboard.MetricsJson(step - 1),
              HasSubstr(absl::StrCat("\"steps\":[[", step, ",")));
}

// 1,040 connections that send nothing, under the usual limit of 1,024 open
// files: they used to take every descriptor, and the next checkpoint failed
// with "Too many open files". The server holds 64 at most; training goes on
// writing its files.
TEST_F(DashboardTest, AFloodOfConnectionsLeavesTrainingItsFiles) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit limited = saved;
  limited.rlim_cur = std::min<rlim_t>(saved.rlim_max, 1024);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limited), 0);
  // The server's 64 connections, and the one it may be accepting (to
  // close the oldest for it).
  const int most = OpenFds() + 65;
  {
    Flood flood(dashboard_->port(), {.connections = 1040});
    EXPECT_LE(OpenFds(), most);
    // A synthetic run: 3,000 steps and a "checkpoint" every 100.
    const char* tmp = std::getenv("TEST_TMPDIR");
    const std::string path =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/checkpoint");
    for (int64_t step = 1; step <= 3000; ++step) {
      ASSERT_TRUE(Step(*dashboard_, step).ok());
      if (step % 100 != 0) continue;
      const int fd =
          open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      ASSERT_GE(fd, 0) << "step " << step << ": " << std::strerror(errno);
      EXPECT_EQ(write(fd, "weights", 7), 7);
      close(fd);
    }
    EXPECT_LE(OpenFds(), most);
    EXPECT_THAT(Get("/api/metrics?since=2999"), HasSubstr("\"steps\":[[3000,"));
  }
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

// Destroying the dashboard (what a SIGTERM comes to once training has
// checkpointed) with requests in flight: million-step polls whose clients
// read nothing, slowloris and idle connections, and requests for the page
// back to back. It used to take 36 s.
TEST_F(DashboardTest, StopsWithinASecondDuringRequests) {
  for (int64_t step = 1; step <= 1000000; ++step) {
    ASSERT_TRUE(Step(*dashboard_, step).ok());
  }
  const int port = dashboard_->port();
  Flood slowloris(
      port, {.connections = 10, .trickle = std::chrono::milliseconds(200)});
  Flood idle(port, {.connections = 40});
  std::vector<int> readers;  // of nothing
  for (int i = 0; i < 4; ++i) {
    const int fd = testing::Connect(port, /*receive_buffer=*/4096);
    const std::string poll = absl::StrCat(
        "GET /api/metrics?since=-1 HTTP/1.1\r\nHost: ", host_, "\r\n\r\n");
    ASSERT_GT(send(fd, poll.data(), poll.size(), MSG_NOSIGNAL), 0);
    readers.push_back(fd);
  }
  // And clients asking for the page as fast as they are answered.
  std::atomic<bool> stopped{false};
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] { GetUntil(port, stopped); });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const Clock::time_point start = Clock::now();
  dashboard_.reset();
  EXPECT_LT(SecondsSince(start), 3.0);
  stopped = true;
  for (std::thread& client : clients) client.join();
  for (const int fd : readers) close(fd);
}

// Handlers still running while the dashboard is destroyed find it whole
// (its server included).
TEST(DashboardStopTest, RequestsInFlightOutliveNothing) {
  for (int round = 0; round < 20; ++round) {
    absl::StatusOr<std::unique_ptr<Dashboard>> d =
        Dashboard::Start({.port = 0}, nullptr);
    ASSERT_TRUE(d.ok()) << d.status();
    const int port = (*d)->port();
    std::atomic<bool> stopped{false};
    std::vector<std::thread> clients;
    for (int i = 0; i < 8; ++i) {
      clients.emplace_back([&] { GetUntil(port, stopped); });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    d->reset();
    stopped = true;
    for (std::thread& client : clients) client.join();
  }
}

}  // namespace
}  // namespace dive::train
