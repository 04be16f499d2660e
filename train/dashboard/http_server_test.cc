// The server against hostile clients: floods of idle connections, slowloris,
// heads that never end, clients that do not read; and that it serves,
// keeps connections alive, compresses nothing and stops at once. The time
// bounds are loose (seconds, for loaded CI machines under the sanitizers):
// what they catch is a request held for as long as an attack lasts, or a
// stop that waits for clients.

#include "train/dashboard/http_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "train/dashboard/test_client.h"

namespace dive::train {
namespace {

using ::dive::train::testing::Connect;
using ::dive::train::testing::Exchange;
using ::dive::train::testing::Flood;
using ::dive::train::testing::Get;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A server whose "/" says hello, "/big" sends `big_` (text), "/slow" takes
// 300 ms.
class HttpServerTest : public ::testing::Test {
 protected:
  void Start(HttpServerOptions options = {}) {
    server_ = std::make_unique<HttpServer>(options);
    httplib::Server& routes = server_->routes();
    routes.Get("/", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(HttpServer::AcceptsGzip(req) ? "hello gzip" : "hello",
                      "text/plain");
    });
    routes.Get("/big", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(big_, "text/plain");
    });
    routes.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      res.set_content("slow", "text/plain");
    });
    ASSERT_TRUE(server_->Start().ok());
    port_ = server_->port();
  }

  std::string big_ = std::string(8 << 20, 'x');
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
};

TEST_F(HttpServerTest, ServesAndKeepsConnectionsAlive) {
  Start();
  EXPECT_THAT(Get(port_, "/"), StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(Get(port_, "/nothing"), StartsWith("HTTP/1.1 404"));
  // Two requests sent at once on one connection: two answers on it.
  const std::string two =
      absl::StrCat("GET / HTTP/1.1\r\nHost: h\r\n\r\n",
                   "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  const int fd = Connect(port_);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(send(fd, two.data(), two.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(two.size()));
  std::string answers;
  char buffer[4096];
  for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) {
    answers.append(buffer, n);
  }
  close(fd);
  EXPECT_THAT(answers, HasSubstr("Keep-Alive: timeout=5, max=100\r\n"));
  EXPECT_THAT(answers, HasSubstr("\r\n\r\nhelloHTTP/1.1 200 OK"));
  EXPECT_THAT(answers, HasSubstr("Connection: close"));
}

// httplib would gzip or brotli a text body per request; it never sees
// Accept-Encoding, and the handler learns whether gzip is taken.
TEST_F(HttpServerTest, CompressesNothingAndTellsHandlersAboutGzip) {
  Start();
  const std::string br = Get(port_, "/", "Accept-Encoding: br\r\n");
  EXPECT_THAT(br, Not(HasSubstr("Content-Encoding")));
  EXPECT_THAT(br, HasSubstr("\r\n\r\nhello"));
  const std::string gzip =
      Get(port_, "/", "Accept-Encoding: gzip, deflate, br\r\n");
  EXPECT_THAT(gzip, Not(HasSubstr("Content-Encoding")));
  EXPECT_THAT(gzip, HasSubstr("\r\n\r\nhello gzip"));
  EXPECT_THAT(Get(port_, "/", "Accept-Encoding: gzip;q=0, br\r\n"),
              HasSubstr("\r\n\r\nhello"));
  // Nor does a Range header make it cut the body into parts.
  EXPECT_THAT(Get(port_, "/", "Range: bytes=0-0,1-1,2-2\r\n"),
              StartsWith("HTTP/1.1 200 OK"));
}

TEST_F(HttpServerTest, RefusesConnectionsBeyondTheCapAndStillAnswers) {
  Start({.max_connections = 64});
  // 1,040 connections that send nothing, each opened again when closed.
  Flood flood(port_, {.connections = 1040});
  EXPECT_LE(server_->open_connections(), 64);
  // A new client's connection closes the oldest idle one: it is answered.
  for (int i = 0; i < 5; ++i) {
    const Clock::time_point start = Clock::now();
    EXPECT_THAT(Get(port_, "/"), StartsWith("HTTP/1.1 200 OK"));
    EXPECT_LT(SecondsSince(start), 4.0);
    EXPECT_LE(server_->open_connections(), 64);
  }
}

TEST_F(HttpServerTest, SlowlorisAndIdleConnectionsDoNotDelayARequest) {
  Start();
  // Ten connections sending a header line every 2 s (no worker waits for
  // them), and 500 idle ones.
  Flood slowloris(
      port_, {.connections = 10, .trickle = std::chrono::milliseconds(2000)});
  Flood idle(port_, {.connections = 500});
  const Clock::time_point until = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < until) {
    const Clock::time_point start = Clock::now();
    EXPECT_THAT(Get(port_, "/"), StartsWith("HTTP/1.1 200 OK"));
    EXPECT_LT(SecondsSince(start), 4.0);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

TEST_F(HttpServerTest, ClosesAConnectionWhoseRequestIsLate) {
  Start({.request_timeout = std::chrono::milliseconds(300)});
  for (const std::string bytes : {"", "GET / HTTP/1.1\r\nHost: h\r\n"}) {
    const int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    (void)!send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    const Clock::time_point start = Clock::now();
    char byte;
    EXPECT_EQ(recv(fd, &byte, 1, 0), 0) << "not closed: '" << bytes << "'";
    EXPECT_LT(SecondsSince(start), 4.0);
    close(fd);
  }
}

TEST_F(HttpServerTest, AnswersAnOverlongHeadAndCloses) {
  Start({.max_head_bytes = 4096});
  const std::string response = Exchange(
      port_, absl::StrCat("GET / HTTP/1.1\r\nX-a: ", std::string(10000, 'a'),
                          "\r\n\r\n"));
  EXPECT_THAT(response, StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(response, HasSubstr("Connection: close"));
}

TEST_F(HttpServerTest, CutsAResponseTheClientDoesNotTake) {
  Start({.write_timeout = std::chrono::milliseconds(500)});
  // 8 MB to a client with a small receive buffer that reads nothing.
  const int fd = Connect(port_, /*receive_buffer=*/4096);
  ASSERT_GE(fd, 0);
  const std::string request = "GET /big HTTP/1.1\r\nHost: h\r\n\r\n";
  ASSERT_GT(send(fd, request.data(), request.size(), MSG_NOSIGNAL), 0);
  const Clock::time_point start = Clock::now();
  const auto wait_for = [this, start](int open) {
    while (server_->open_connections() != open && SecondsSince(start) < 5) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return server_->open_connections();
  };
  ASSERT_EQ(wait_for(1), 1);
  EXPECT_EQ(wait_for(0), 0);
  EXPECT_GT(SecondsSince(start), 0.4);
  EXPECT_LT(SecondsSince(start), 4.0);
  close(fd);
}

TEST_F(HttpServerTest, StopsAtOnceWithRequestsInFlight) {
  Start();
  Flood slowloris(
      port_, {.connections = 10, .trickle = std::chrono::milliseconds(200)});
  Flood idle(port_, {.connections = 40});
  const int reader = Connect(port_, /*receive_buffer=*/4096);  // reads none
  const std::string big = "GET /big HTTP/1.1\r\nHost: h\r\n\r\n";
  ASSERT_GT(send(reader, big.data(), big.size(), MSG_NOSIGNAL), 0);
  std::thread slow([this] { Get(port_, "/slow"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const Clock::time_point start = Clock::now();
  server_->Stop();
  EXPECT_LT(SecondsSince(start), 3.0);
  EXPECT_EQ(server_->open_connections(), 0);
  slow.join();
  close(reader);
}

TEST(HttpServerStartTest, NamesTheAddressItCannotListenOn) {
  HttpServer first({});
  ASSERT_TRUE(first.Start().ok());
  HttpServer second({.port = first.port()});
  const absl::Status status = second.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(),
              HasSubstr(absl::StrCat("127.0.0.1:", first.port())));
}

}  // namespace
}  // namespace dive::train
