#include "train/dashboard/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace dive::train {
namespace {

// Set on a request, in place of its Accept-Encoding, when it takes gzip.
constexpr char kGzipHeader[] = "Dive-Accepts-Gzip";
// Connections accepted at most per turn of the accept loop, which reads the
// heads that have arrived at each turn: a connection whose request comes
// with it is read before a flood of new ones could close it (it takes
// 64 / 16 = 4 turns of them).
constexpr int kAcceptBatch = 16;
// How often a blocked write looks whether the server is stopping.
constexpr auto kStopCheck = std::chrono::milliseconds(100);

// Lowest CPU priority for the calling thread (on Linux a thread's own).
void Nice() { (void)!setpriority(PRIO_PROCESS, gettid(), 19); }

int Millis(std::chrono::steady_clock::duration d) {
  return static_cast<int>(std::max<int64_t>(
      0, std::chrono::ceil<std::chrono::milliseconds>(d).count()));
}

// Whether an Accept-Encoding value takes gzip: a "gzip" or "*" element
// whose q is not 0 ("gzip;q=0" refuses it).
bool TakesGzip(absl::string_view accept_encoding) {
  for (absl::string_view element : absl::StrSplit(accept_encoding, ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(element, ';');
    const absl::string_view coding = absl::StripAsciiWhitespace(parts[0]);
    if (!absl::EqualsIgnoreCase(coding, "gzip") && coding != "*") continue;
    double q = 1;
    for (size_t i = 1; i < parts.size(); ++i) {
      absl::string_view p = absl::StripAsciiWhitespace(parts[i]);
      if (absl::ConsumePrefix(&p, "q=") && !absl::SimpleAtod(p, &q)) q = 0;
    }
    if (q > 0) return true;
  }
  return false;
}

// The end of a request head, "\r\n\r\n", in `head` (searched from `from`).
bool HasWholeHead(const std::string& head, size_t from = 0) {
  return head.find("\r\n\r\n", from >= 3 ? from - 3 : 0) != std::string::npos;
}

void ShutdownAndClose(int fd) {
  shutdown(fd, SHUT_RDWR);
  close(fd);
}

// A connection to httplib: reads the head already received (never the
// socket: a worker never waits for a client's bytes) and writes to the
// socket until `deadline`, or until the server stops.
class ConnectionStream : public httplib::Stream {
 public:
  ConnectionStream(int fd, const std::string& head,
                   std::chrono::steady_clock::time_point deadline,
                   const std::atomic<bool>& stopping)
      : fd_(fd), head_(head), deadline_(deadline), stopping_(stopping) {}

  size_t consumed() const { return consumed_; }

  bool is_readable() const override { return consumed_ < head_.size(); }
  bool is_writable() const override {
    return !stopping_ && std::chrono::steady_clock::now() < deadline_;
  }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, head_.size() - consumed_);
    std::memcpy(ptr, head_.data() + consumed_, n);
    consumed_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    for (;;) {
      const ssize_t n = send(fd_, ptr, size, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      const auto left = deadline_ - std::chrono::steady_clock::now();
      if (stopping_ || left <= left.zero()) return -1;
      pollfd p{fd_, POLLOUT, 0};
      poll(&p, 1,
           Millis(std::min<std::chrono::steady_clock::duration>(left,
                                                                kStopCheck)));
    }
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    Address(getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    Address(getsockname, ip, port);
  }
  socket_t socket() const override { return fd_; }

 private:
  template <typename GetName>
  void Address(GetName get_name, std::string& ip, int& port) const {
    sockaddr_in addr{};
    socklen_t length = sizeof(addr);
    char text[INET_ADDRSTRLEN] = "";
    if (get_name(fd_, reinterpret_cast<sockaddr*>(&addr), &length) == 0 &&
        addr.sin_family == AF_INET) {
      inet_ntop(AF_INET, &addr.sin_addr, text, sizeof(text));
      port = ntohs(addr.sin_port);
    }
    ip = text;
  }

  const int fd_;
  const std::string& head_;
  size_t consumed_ = 0;
  const std::chrono::steady_clock::time_point deadline_;
  const std::atomic<bool>& stopping_;
};

}  // namespace

bool HttpServer::Router::Answer(httplib::Stream& stream, bool close_connection,
                                bool& connection_closed) {
  // What handlers see: no ranges (every response is whole), and in place of
  // Accept-Encoding, which would have httplib compress the body, whether
  // the client takes gzip.
  return process_request(
      stream, close_connection, connection_closed, [](httplib::Request& req) {
        req.ranges.clear();
        const bool gzip = TakesGzip(req.get_header_value("Accept-Encoding"));
        req.headers.erase("Accept-Encoding");
        req.headers.erase(kGzipHeader);
        if (gzip) req.set_header(kGzipHeader, "1");
      });
}

bool HttpServer::AcceptsGzip(const httplib::Request& request) {
  return request.has_header(kGzipHeader);
}

HttpServer::HttpServer(HttpServerOptions options)
    : options_(std::move(options)) {}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::Start() {
  const std::string address = absl::StrCat("127.0.0.1:", options_.port);
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot listen on ", address, ": socket: ", std::strerror(errno)));
  }
  // SO_REUSEADDR alone: SO_REUSEPORT (httplib's default) would let another
  // process bind the same port and take the server's connections.
  const int yes = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(options_.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_fd_, SOMAXCONN) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &length) !=
          0) {
    const int error = errno;
    close(listen_fd_);
    listen_fd_ = -1;
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen on ", address, ": ", std::strerror(error)));
  }
  port_ = ntohs(addr.sin_port);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  // What the Keep-Alive header of each response tells the client.
  router_.set_keep_alive_timeout(
      std::chrono::ceil<std::chrono::seconds>(options_.request_timeout)
          .count());
  router_.set_keep_alive_max_count(options_.max_requests_per_connection);
  router_.SetListening(listen_fd_);
  acceptor_ = std::thread(&HttpServer::AcceptLoop, this);
  for (int i = 0; i < std::max(options_.threads, 1); ++i) {
    workers_.emplace_back(&HttpServer::WorkLoop, this);
  }
  return absl::OkStatus();
}

void HttpServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  // Responses being written by a content provider end at once.
  router_.SetListening(-1);
  ready_cv_.notify_all();
  if (wake_fd_ >= 0) Wake();
  if (acceptor_.joinable()) acceptor_.join();
  for (std::thread& worker : workers_) worker.join();
  for (auto& c : ready_) Close(std::move(c));
  for (auto& c : returned_) Close(std::move(c));
  ready_.clear();
  returned_.clear();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
}

void HttpServer::Wake() {
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
}

void HttpServer::Close(std::unique_ptr<Connection> c) {
  ShutdownAndClose(c->fd);
  --open_;
}

void HttpServer::Dispatch(std::unique_ptr<Connection> c) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ready_.push_back(std::move(c));
  }
  ready_cv_.notify_one();
}

void HttpServer::AcceptLoop() {
  Nice();
  // The connections waiting for (the rest of) a request head; this
  // thread's alone.
  std::vector<std::unique_ptr<Connection>> waiting;
  std::vector<pollfd> polled;
  while (!stopping_) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& c : returned_) {
        c->waiting_since = Clock::now();
        // It may hold its next request whole already (sent with the last).
        if (HasWholeHead(c->head)) {
          ready_.push_back(std::move(c));
          ready_cv_.notify_one();
        } else {
          waiting.push_back(std::move(c));
        }
      }
      returned_.clear();
    }

    polled.assign({{wake_fd_, POLLIN, 0}, {listen_fd_, POLLIN, 0}});
    Clock::time_point wake_at = Clock::now() + std::chrono::seconds(60);
    for (const auto& c : waiting) {
      polled.push_back({c->fd, POLLIN, 0});
      wake_at = std::min(wake_at, c->waiting_since + options_.request_timeout);
    }
    poll(polled.data(), polled.size(), Millis(wake_at - Clock::now()));
    if (polled[0].revents != 0) {
      uint64_t count;
      (void)!::read(wake_fd_, &count, sizeof(count));
    }

    // Hand whole heads to the workers; close the connections that the
    // client closed, and those past their deadline.
    const Clock::time_point now = Clock::now();
    for (size_t i = 0; i < waiting.size(); ++i) {
      std::unique_ptr<Connection>& c = waiting[i];
      const Head head = polled[i + 2].revents != 0 ? ReadHead(*c) : kPartial;
      if (head == kWhole) {
        Dispatch(std::move(c));
      } else if (head == kClosed ||
                 now >= c->waiting_since + options_.request_timeout) {
        Close(std::move(c));
      }
    }
    waiting.erase(std::remove(waiting.begin(), waiting.end(), nullptr),
                  waiting.end());
    if (polled[1].revents != 0) Accept(waiting);
  }
  for (auto& c : waiting) Close(std::move(c));
}

HttpServer::Head HttpServer::ReadHead(Connection& c) {
  const size_t before = c.head.size();
  char buffer[4096];
  while (c.head.size() < options_.max_head_bytes) {
    const ssize_t n =
        recv(c.fd, buffer,
             std::min(sizeof(buffer), options_.max_head_bytes - c.head.size()),
             MSG_DONTWAIT);
    if (n > 0) {
      c.head.append(buffer, n);
    } else if (n == 0) {
      return kClosed;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else if (errno != EINTR) {
      return kClosed;
    }
  }
  // A head cut at max_head_bytes is answered (a 4xx) all the same.
  return HasWholeHead(c.head, before) ||
                 c.head.size() >= options_.max_head_bytes
             ? kWhole
             : kPartial;
}

void HttpServer::Accept(std::vector<std::unique_ptr<Connection>>& waiting) {
  for (int i = 0; i < kAcceptBatch; ++i) {
    const int fd =
        accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // Out of file descriptors (the process's, or the system's): the
      // connection waits in the backlog; try again a little later.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return;
    }
    if (open_ >= options_.max_connections) {
      if (waiting.empty()) {  // every connection is being answered
        ShutdownAndClose(fd);
        continue;
      }
      // Make room: close the one that has waited longest for its request.
      auto oldest = std::min_element(
          waiting.begin(), waiting.end(), [](const auto& a, const auto& b) {
            return a->waiting_since < b->waiting_since;
          });
      Close(std::move(*oldest));
      waiting.erase(oldest);
    }
    ++open_;
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    c->waiting_since = Clock::now();
    waiting.push_back(std::move(c));
  }
}

void HttpServer::WorkLoop() {
  Nice();
  for (;;) {
    std::unique_ptr<Connection> c;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      ready_cv_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
      if (stopping_) return;
      c = std::move(ready_.front());
      ready_.pop_front();
    }
    if (!Answer(*c)) {
      Close(std::move(c));
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) {
        Close(std::move(c));
        return;
      }
      returned_.push_back(std::move(c));
    }
    Wake();
  }
}

bool HttpServer::Answer(Connection& c) {
  ConnectionStream stream(c.fd, c.head, Clock::now() + options_.write_timeout,
                          stopping_);
  // A head cut at max_head_bytes gets its 4xx, then the connection closes.
  const bool last = ++c.requests >= options_.max_requests_per_connection ||
                    !HasWholeHead(c.head);
  bool connection_closed = false;
  const bool written = router_.Answer(stream, last, connection_closed);
  c.head.erase(0, stream.consumed());
  return written && !connection_closed && !last && !stopping_;
}

}  // namespace dive::train
