// File: train/dashboard/test_client.h
// -----------------------------------------------------------------------------
//
// Raw-socket clients of a server on 127.0.0.1, for the dashboard's tests:
// `Exchange` sends one request as it is and returns the answer; `Flood`
// holds many connections from a child process (so that they count against
// its open-file limit, not the test's), idle or trickling header lines
// (slowloris).
//
// Example:
//
//   Flood idle(port, {.connections = 1040});
//   EXPECT_THAT(Exchange(port, "GET / HTTP/1.1\r\n..."), StartsWith(...));

#ifndef TRAIN_DASHBOARD_TEST_CLIENT_H_
#define TRAIN_DASHBOARD_TEST_CLIENT_H_

#include <sys/types.h>

#include <chrono>
#include <string>

namespace dive::train::testing {

// A connected socket to 127.0.0.1:`port` (-1 and a test failure if the
// connection is refused). `receive_buffer` > 0 sets SO_RCVBUF first.
int Connect(int port, int receive_buffer = 0);

// Sends `request` as is to 127.0.0.1:`port` and returns the server's answer:
// one response, or all it sends until it closes the connection (or
// `timeout` passes).
std::string Exchange(int port, const std::string& request,
                     std::chrono::seconds timeout = std::chrono::seconds(5));

// "GET `target` HTTP/1.1" to 127.0.0.1:`port` with the Host header the
// dashboard wants, `headers` ("Name: value\r\n" each) and Connection: close.
std::string Get(int port, const std::string& target,
                const std::string& headers = "");

struct FloodOptions {
  int connections = 0;
  // 0: idle; else one header line ("X-a: b\r\n") every `trickle` on each,
  // after a request line (slowloris).
  std::chrono::milliseconds trickle{0};
};

// `connections` connections to 127.0.0.1:`port` from a child process, each
// opened again (within a second, or `trickle`) when the server closes it,
// until destroyed. The constructor returns once all are open (a test
// failure if they cannot be).
class Flood {
 public:
  Flood(int port, FloodOptions options);
  ~Flood();  // kills the child
  Flood(const Flood&) = delete;
  Flood& operator=(const Flood&) = delete;

 private:
  pid_t child_ = -1;
};

}  // namespace dive::train::testing

#endif  // TRAIN_DASHBOARD_TEST_CLIENT_H_
