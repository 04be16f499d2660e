#include "train/dashboard/test_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace dive::train::testing {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

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

}  // namespace

int Connect(int port, int receive_buffer) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (receive_buffer > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer,
               sizeof(receive_buffer));
  }
  const sockaddr_in addr = Loopback(port);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    close(fd);
    ADD_FAILURE() << "cannot connect to port " << port;
    return -1;
  }
  return fd;
}

std::string Exchange(int port, const std::string& request,
                     std::chrono::seconds timeout) {
  const int fd = Connect(port);
  if (fd < 0) return "";
  timeval tv{static_cast<time_t>(timeout.count()), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
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

std::string Get(int port, const std::string& target,
                const std::string& headers) {
  return Exchange(
      port, absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: 127.0.0.1:", port,
                         "\r\n", headers, "Connection: close\r\n\r\n"));
}

Flood::Flood(int port, FloodOptions options) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_max < static_cast<rlim_t>(options.connections) + 64) {
    ADD_FAILURE() << "the open-file limit " << limit.rlim_max
                  << " leaves no room for " << options.connections
                  << " connections";
    return;
  }
  // The child calls async-signal-safe functions alone (the parent has
  // threads): everything it needs is made here.
  std::vector<int> fds(options.connections, -1);
  const sockaddr_in addr = Loopback(port);
  const int trickle_ms = static_cast<int>(options.trickle.count());
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2 failed";
    return;
  }
  child_ = fork();
  if (child_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The parent's descriptors (its server's sockets among them) are not
    // the child's to keep open.
    rlimit now{};
    getrlimit(RLIMIT_NOFILE, &now);
    for (int fd = 3; fd < static_cast<int>(now.rlim_cur); ++fd) {
      if (fd != ready[1]) close(fd);
    }
    const rlimit raised{limit.rlim_max, limit.rlim_max};
    setrlimit(RLIMIT_NOFILE, &raised);
    const auto open_one = [&]() {
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) !=
          0) {
        close(fd);
        return -1;
      }
      constexpr char kLine[] = "GET / HTTP/1.1\r\n";
      if (trickle_ms > 0) send(fd, kLine, sizeof(kLine) - 1, MSG_NOSIGNAL);
      return fd;
    };
    for (int& fd : fds) {
      if ((fd = open_one()) < 0) _exit(1);
    }
    const char ok = 1;
    if (write(ready[1], &ok, 1) != 1) _exit(1);
    for (;;) {
      poll(nullptr, 0, trickle_ms > 0 ? trickle_ms : 1000);
      for (int& fd : fds) {
        char byte;
        const ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
          close(fd);  // closed by the server: open another
          fd = open_one();
        } else if (trickle_ms > 0) {
          constexpr char kHeader[] = "X-a: b\r\n";
          send(fd, kHeader, sizeof(kHeader) - 1, MSG_NOSIGNAL);
        }
      }
    }
  }
  close(ready[1]);
  char ok = 0;
  if (child_ < 0 || read(ready[0], &ok, 1) != 1) {
    ADD_FAILURE() << "the flood of " << options.connections
                  << " connections did not start";
  }
  close(ready[0]);
}

Flood::~Flood() {
  if (child_ <= 0) return;
  kill(child_, SIGKILL);
  waitpid(child_, nullptr, 0);
}

}  // namespace dive::train::testing
