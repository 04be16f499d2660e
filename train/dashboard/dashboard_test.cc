// The dashboard's server through raw sockets: what it serves, that every bad
// request gets a 4xx and the server goes on, that it listens on loopback
// alone; the JSON it builds from the observer calls; and that no client can
// slow training, make it fail or grow its memory (floods of connections,
// gzip and brotli clients, a million-step history, slow polls, a stop
// during requests).

#include "train/dashboard/dashboard.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "train/dashboard/assets.h"
#include "train/dashboard/test_client.h"

namespace dive::train {
namespace {

using ::dive::train::testing::Exchange;
using ::dive::train::testing::Flood;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The body of an HTTP response.
std::string Body(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

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

// `gz` (a gzip stream) decompressed; "" if it is not one.
std::string Gunzip(const std::string& gz) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return "";
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = gz.size();
  std::string out;
  char buffer[1 << 16];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buffer);
    z.avail_out = sizeof(buffer);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buffer, sizeof(buffer) - z.avail_out);
  }
  inflateEnd(&z);
  return rc == Z_STREAM_END ? out : "";
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

// One training step's observer call, as Train makes it.
absl::Status Step(Dashboard& d, int64_t step, double loss = 0.5,
                  double accuracy = 0.5) {
  TrainState state;
  state.position.global_step = step;
  state.position.step = step;
  return d.OnStep(state, StepInfo{1000, 32, loss, accuracy, 0.1f});
}

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Dashboard>> d =
        Dashboard::Start({.port = 0,
                          .title = "LeNet \"test\"\n",
                          .epochs = 2,
                          .class_names = {"t-shirt", "trouser"}},
                         /*profiler=*/nullptr);
    ASSERT_TRUE(d.ok()) << d.status();
    dashboard_ = *std::move(d);
    host_ = absl::StrCat("127.0.0.1:", dashboard_->port());
  }

  std::string Get(const std::string& target, const std::string& host,
                  const std::string& headers = "") {
    return Exchange(dashboard_->port(),
                    absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: ", host,
                                 "\r\n", headers, "Connection: close\r\n\r\n"));
  }
  std::string Get(const std::string& target) { return Get(target, host_); }

  // Two steps of a 2-class run and one epoch.
  void FeedOneEpoch() {
    TrainState state;
    for (int64_t step = 1; step <= 2; ++step) {
      state.position.global_step = step;
      state.position.step = step;
      const double loss =
          step == 2 ? std::numeric_limits<double>::quiet_NaN() : 0.75;
      ASSERT_TRUE(
          dashboard_->OnStep(state, StepInfo{2, 32, loss, 0.5, 0.1f}).ok());
    }
    EpochMetrics m;
    m.epoch = 1;
    m.loss = 0.625;
    m.train_acc = 0.5;
    m.test_acc = 0.25;
    m.seconds = 1.5;
    m.examples_per_sec = 42.5;
    m.confusion = {{3, 1}, {2, 0}};
    ASSERT_TRUE(dashboard_->OnEpoch(state, m).ok());
  }

  std::unique_ptr<Dashboard> dashboard_;
  std::string host_;
};

TEST_F(DashboardTest, ServesThePageItsScriptsAndChartJs) {
  EXPECT_EQ(dashboard_->url(),
            absl::StrCat("http://127.0.0.1:", dashboard_->port(), "/"));
  const std::string page = Get("/");
  EXPECT_THAT(page, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(page, HasSubstr("Content-Type: text/html"));
  EXPECT_THAT(page, HasSubstr("Content-Security-Policy: default-src 'self'"));
  EXPECT_THAT(page, HasSubstr("X-Content-Type-Options: nosniff"));
  EXPECT_THAT(page, HasSubstr("X-Frame-Options: DENY"));
  EXPECT_THAT(page, HasSubstr("<table id=\"epochs\">"));
  EXPECT_THAT(Get("/chart.js"), HasSubstr("Chart.js v3.9.1"));
  EXPECT_THAT(Get("/dashboard.js"), HasSubstr("/api/metrics?since="));
  EXPECT_THAT(Get("/dashboard.css"), StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(Get("/", absl::StrCat("localhost:", dashboard_->port())),
              StartsWith("HTTP/1.1 200 OK"));
  const std::string head = Exchange(
      dashboard_->port(), absl::StrCat("HEAD / HTTP/1.1\r\nHost: ", host_,
                                       "\r\nConnection: close\r\n\r\n"));
  EXPECT_THAT(head, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(head, Not(HasSubstr("<html")));
}

TEST_F(DashboardTest, MetricsJsonHoldsTheStepsEpochsAndConfusion) {
  FeedOneEpoch();
  const std::string all = dashboard_->MetricsJson(-1);
  EXPECT_THAT(all, StartsWith("{\"title\":\"LeNet \\\"test\\\"\\n\""));
  EXPECT_THAT(all, HasSubstr("\"state\":\"training\""));
  EXPECT_THAT(all, HasSubstr("\"epochs_total\":2,\"steps_per_epoch\":2"));
  EXPECT_THAT(all, HasSubstr("\"global_step\":2"));
  // The diverged step's loss is null, not "nan" (which is not JSON).
  EXPECT_THAT(all, HasSubstr("\"steps\":[[1,0.75,0.5,0.100000001],"
                             "[2,null,0.5,0.100000001]]"));
  EXPECT_THAT(all, HasSubstr("\"epochs\":[{\"epoch\":1,\"loss\":0.625,"
                             "\"train_acc\":0.5,\"test_acc\":0.25,"
                             "\"seconds\":1.5,\"examples_per_sec\":42.5}]"));
  EXPECT_THAT(all, HasSubstr("\"classes\":[\"t-shirt\",\"trouser\"]"));
  EXPECT_THAT(all, HasSubstr("\"confusion\":[[3,1],[2,0]]"));
  EXPECT_THAT(all, HasSubstr("\"layers\":[]"));
  EXPECT_THAT(all, HasSubstr("\"full\":true,\"buckets\":[],\"steps\":"));
  // A client's last step: the steps after it alone.
  EXPECT_THAT(dashboard_->MetricsJson(1),
              HasSubstr("\"full\":false,\"buckets\":[],"
                        "\"steps\":[[2,null,0.5,0.100000001]]"));
  EXPECT_THAT(dashboard_->MetricsJson(2), HasSubstr("\"steps\":[]"));
  // A step this run has not reached (a page of an earlier run): all again.
  EXPECT_THAT(dashboard_->MetricsJson(5), HasSubstr("\"full\":true"));

  // The same over HTTP, with and without `since`.
  const std::string http = Get("/api/metrics?since=1");
  EXPECT_THAT(http, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(http, HasSubstr("Content-Type: application/json"));
  EXPECT_THAT(http, HasSubstr("\"steps\":[[2,"));
  EXPECT_THAT(Get("/api/metrics"), HasSubstr("\"steps\":[[1,"));

  dashboard_->SetState("finished");
  EXPECT_THAT(dashboard_->MetricsJson(-1), HasSubstr("\"state\":\"finished\""));
  EXPECT_THAT(dashboard_->MetricsJson(-1), HasSubstr("\"eta_seconds\":0,"));
}

TEST_F(DashboardTest, EveryBadRequestGetsA4xxAndTheServerGoesOn) {
  const int port = dashboard_->port();
  struct Case {
    const char* what;
    std::string request;
    const char* status;
  };
  const std::string host =
      absl::StrCat("Host: ", host_, "\r\nConnection: close\r\n");
  constexpr char kGarbage[] = "\x16\x03\x01\x02\x00\x01\x00 junk\r\n\r\n";
  const Case cases[] = {
      {"POST",
       absl::StrCat("POST / HTTP/1.1\r\n", host, "Content-Length: 2\r\n\r\nhi"),
       "405"},
      {"DELETE", absl::StrCat("DELETE /api/metrics HTTP/1.1\r\n", host, "\r\n"),
       "405"},
      {"unknown path", absl::StrCat("GET /secret HTTP/1.1\r\n", host, "\r\n"),
       "404"},
      {"traversal",
       absl::StrCat("GET /../../etc/passwd HTTP/1.1\r\n", host, "\r\n"), "404"},
      {"encoded traversal",
       absl::StrCat("GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n", host, "\r\n"),
       "404"},
      {"sub-path of the API",
       absl::StrCat("GET /api/metrics/x HTTP/1.1\r\n", host, "\r\n"), "404"},
      {"foreign Host (DNS rebinding)",
       absl::StrCat("GET / HTTP/1.1\r\nHost: evil.example:", port,
                    "\r\nConnection: close\r\n\r\n"),
       "403"},
      {"no Host", "GET / HTTP/1.0\r\n\r\n", "403"},
      {"since not a number",
       absl::StrCat("GET /api/metrics?since=abc HTTP/1.1\r\n", host, "\r\n"),
       "400"},
      {"since negative",
       absl::StrCat("GET /api/metrics?since=-7 HTTP/1.1\r\n", host, "\r\n"),
       "400"},
      {"since too large",
       absl::StrCat("GET /api/metrics?since=99999999999999999999 HTTP/1.1\r\n",
                    host, "\r\n"),
       "400"},
      {"unknown parameter",
       absl::StrCat("GET /api/metrics?x=1 HTTP/1.1\r\n", host, "\r\n"), "400"},
      {"garbage (a TLS hello)", std::string(kGarbage, sizeof(kGarbage) - 1),
       "400"},
      {"no version", "GET /\r\n\r\n", "400"},
      {"URI too long",
       absl::StrCat("GET /", std::string(20000, 'a'), " HTTP/1.1\r\n", host,
                    "\r\n"),
       "414"},
  };
  for (const Case& c : cases) {
    const std::string response = Exchange(port, c.request);
    EXPECT_THAT(response, StartsWith(absl::StrCat("HTTP/1.1 ", c.status)))
        << c.what << ": " << response.substr(0, 200);
    EXPECT_THAT(response, Not(HasSubstr("<html"))) << c.what;
  }
  // Connections that send nothing, or are cut mid-request, and stay open:
  // the server still answers others meanwhile.
  std::vector<int> idle;
  for (const char* bytes : {"", "GET / HT", "GET / HTTP/1.1\r\nHost: 1"}) {
    const int fd = testing::Connect(port);
    ASSERT_GE(fd, 0);
    (void)!send(fd, bytes, strlen(bytes), MSG_NOSIGNAL);
    idle.push_back(fd);
  }
  EXPECT_THAT(Get("/"), StartsWith("HTTP/1.1 200 OK"));
  for (const int fd : idle) close(fd);
  EXPECT_THAT(Get("/"), StartsWith("HTTP/1.1 200 OK"));
}

// Chromium sends "Accept-Encoding: gzip, deflate, br". Each file was gzipped
// once, at build time: a client that takes gzip gets those bytes, one that
// takes only br the file as it is; no request compresses anything (brotli at
// quality 11 took 0.34 CPU-s per Chart.js request).
TEST_F(DashboardTest, ServesTheFilesGzippedAtBuildTime) {
  const dashboard_assets::Asset& chart = dashboard_assets::kChartJs;
  const std::string gzip_bytes(reinterpret_cast<const char*>(chart.gzip),
                               chart.gzip_size);
  ASSERT_EQ(Gunzip(gzip_bytes), std::string(chart.data, chart.size));
  EXPECT_LT(chart.gzip_size, chart.size / 2);

  const std::string gz =
      Get("/chart.js", host_, "Accept-Encoding: gzip, deflate, br\r\n");
  EXPECT_THAT(gz, HasSubstr("Content-Encoding: gzip\r\n"));
  EXPECT_THAT(gz, HasSubstr("Vary: Accept-Encoding\r\n"));
  EXPECT_TRUE(Body(gz) == gzip_bytes);
  const std::string br = Get("/chart.js", host_, "Accept-Encoding: br\r\n");
  EXPECT_THAT(br, Not(HasSubstr("Content-Encoding")));
  EXPECT_TRUE(Body(br) == std::string(chart.data, chart.size));
  const std::string page = Get("/", host_, "Accept-Encoding: gzip\r\n");
  EXPECT_THAT(Gunzip(Body(page)), HasSubstr("<table id=\"epochs\">"));

  // Those cost no more than the file as it is (brotli per request would add
  // 0.34 s each).
  const auto seconds = [this](const std::string& headers) {
    const Clock::time_point start = Clock::now();
    for (int i = 0; i < 10; ++i) Get("/chart.js", host_, headers);
    return SecondsSince(start);
  };
  const double plain = seconds("");
  EXPECT_LT(seconds("Accept-Encoding: br\r\n"), 2 * plain + 1);
  EXPECT_LT(seconds("Accept-Encoding: gzip, deflate, br\r\n"), 2 * plain + 1);
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

TEST(DashboardStartTest, NamesABadOrBusyPort) {
  absl::StatusOr<std::unique_ptr<Dashboard>> bad =
      Dashboard::Start({.port = 70000}, nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("70000"));

  absl::StatusOr<std::unique_ptr<Dashboard>> first =
      Dashboard::Start({.port = 0}, nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  const int port = (*first)->port();
  EXPECT_GT(port, 0);
  absl::StatusOr<std::unique_ptr<Dashboard>> second =
      Dashboard::Start({.port = port}, nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(),
              HasSubstr(absl::StrCat("127.0.0.1:", port)));
}

// The local addresses of the listening IPv4 sockets on `port`, as the kernel
// lists them in /proc/net/tcp ("0100007F" is 127.0.0.1, "00000000" any).
std::vector<std::string> ListeningAddresses(int port) {
  std::ifstream in("/proc/net/tcp");
  std::vector<std::string> addresses;
  std::string line;
  std::getline(in, line);  // the header
  const std::string port_hex = absl::StrFormat("%04X", port);
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    if (state == "0A" && local.size() == 13 && local.substr(9) == port_hex) {
      addresses.push_back(local.substr(0, 8));
    }
  }
  return addresses;
}

TEST(DashboardStartTest, ListensOnLoopbackOnly) {
  absl::StatusOr<std::unique_ptr<Dashboard>> d =
      Dashboard::Start({.port = 0}, nullptr);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT(ListeningAddresses((*d)->port()),
              ::testing::ElementsAre("0100007F"));
}

}  // namespace
}  // namespace dive::train
