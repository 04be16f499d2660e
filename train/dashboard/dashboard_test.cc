// The dashboard's server through raw sockets: what it serves, that every bad
// request gets a 4xx and the server goes on, that it listens on loopback
// alone; and the JSON it builds from the observer calls.

#include "train/dashboard/dashboard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dive::train {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// True once `response` holds a whole answer to `request`: its headers and
// Content-Length bytes of body (none for HEAD).
bool Complete(const std::string& response, const std::string& request) {
  const size_t end = response.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  if (absl::StartsWith(request, "HEAD ")) return true;
  const size_t at = response.find("Content-Length: ");
  if (at == std::string::npos || at > end) return false;  // until closed
  const size_t length = std::stoul(response.substr(at + 16));
  return response.size() >= end + 4 + length;
}

// Sends `request` as is to 127.0.0.1:`port` and returns the server's answer:
// one response, or all it sends until it closes the connection (or 5 s
// pass).
std::string Exchange(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    ADD_FAILURE() << "cannot connect to port " << port;
    return "";
  }
  // The server may answer and close before reading a long request whole.
  (void)!send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buffer[4096];
  for (ssize_t n; !Complete(response, request) &&
                  (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) {
    response.append(buffer, n);
  }
  close(fd);
  return response;
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

  std::string Get(const std::string& target, const std::string& host) {
    return Exchange(dashboard_->port(),
                    absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: ", host,
                                 "\r\nConnection: close\r\n\r\n"));
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
  EXPECT_THAT(all, StartsWith("{\"title\":\"LeNet \\\"test\\\"\\u000a\""));
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
  EXPECT_THAT(dashboard_->MetricsJson(1),
              HasSubstr("\"steps\":[[2,null,0.5,0.100000001]]"));
  EXPECT_THAT(dashboard_->MetricsJson(2), HasSubstr("\"steps\":[]"));

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
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    (void)!send(fd, bytes, strlen(bytes), MSG_NOSIGNAL);
    idle.push_back(fd);
  }
  EXPECT_THAT(Get("/"), StartsWith("HTTP/1.1 200 OK"));
  for (const int fd : idle) close(fd);
  EXPECT_THAT(Get("/"), StartsWith("HTTP/1.1 200 OK"));
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
