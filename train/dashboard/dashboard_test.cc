// The dashboard's server through raw sockets: what it serves (the page, its
// scripts and Chart.js, gzipped at build time), the JSON it builds from the
// observer calls, that every bad request gets a 4xx and the server goes on,
// and that it listens on loopback alone. That no client can slow training,
// make it fail or grow its memory is dashboard_stress_test.cc's.

#include "train/dashboard/dashboard.h"

#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "autograd/functions.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "tensor/json.h"
#include "train/dashboard/assets.h"
#include "train/dashboard/dashboard_fixture.h"
#include "train/dashboard/test_client.h"

namespace dive::train {
namespace {

using ::dive::train::testing::Body;
using ::dive::train::testing::Clock;
using ::dive::train::testing::DashboardTest;
using ::dive::train::testing::Exchange;
using ::dive::train::testing::SecondsSince;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

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

// The profiler's roofline and per-layer numbers, as --profile's table
// computes them (RooflineOf), on a Linear(4, 2) on [3, 4]: 48 FLOPs forward,
// 96 backward, 112 + 192 bytes, 0.47 FLOP/byte.
TEST(DashboardLayersTest, MetricsJsonHoldsTheRooflineOfEachLayer) {
  auto model = std::make_shared<nn::Sequential>();
  model->Add(std::make_shared<nn::Linear>(4, 2));
  LayerProfiler profiler(*model);
  profiler.SetRoofline({.peak_kind = "fma",
                        .threads = 2,
                        .peak_flops = 100e9,
                        .bandwidth = 50e9,
                        .cpu = "Test CPU"});
  absl::StatusOr<std::unique_ptr<Dashboard>> dashboard =
      Dashboard::Start({.port = 0, .title = "t", .epochs = 1}, &profiler);
  ASSERT_TRUE(dashboard.ok()) << dashboard.status();
  const autograd::Variable x(Tensor::Ones({3, 4}), /*requires_grad=*/true);
  Sum((*model)(x)).Backward();
  TrainState state;
  state.position.global_step = 1;
  ASSERT_TRUE(profiler.OnStep(state, StepInfo{1, 3, 0.5, 0.5, 0.1f}).ok());
  ASSERT_TRUE((*dashboard)->OnStep(state, StepInfo{1, 3, 0.5, 0.5, 0.1f}).ok());
  const std::string json = (*dashboard)->MetricsJson(-1);
  EXPECT_THAT(json, HasSubstr("\"roofline\":{\"cpu\":\"Test CPU\",\"peak\":"
                              "\"fma\",\"threads\":2,\"peak_gflops\":100,"
                              "\"bandwidth_gbs\":50,\"ridge\":2}"));
  const std::vector<LayerStats> layers = profiler.Layers();
  ASSERT_EQ(layers.size(), 2u);
  const LayerRoofline r = RooflineOf(layers[1], profiler.roofline());
  EXPECT_EQ(r.bytes, 112 + 192);
  EXPECT_THAT(json,
              HasSubstr(absl::StrCat(
                  "\"mb_per_step\":", JsonText(JsonNumber(304e-6, 9)),
                  ",\"flop_per_byte\":", JsonText(JsonNumber(144.0 / 304, 9)),
                  ",\"bound\":\"memory\"")));
  EXPECT_THAT(
      json,
      HasSubstr(absl::StrCat(
          "\"fraction_of_peak\":", JsonText(JsonNumber(r.fraction_of_peak, 9)),
          ",\"fraction_of_roof\":",
          JsonText(JsonNumber(r.fraction_of_roof, 9)))));
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
