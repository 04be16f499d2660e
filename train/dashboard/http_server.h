// File: train/dashboard/http_server.h
// -----------------------------------------------------------------------------
//
// An HTTP/1.1 server on 127.0.0.1 that no client can turn against the process
// it runs in (a trainer): whatever clients do, it holds a bounded number of
// file descriptors, threads and bytes, and it stops within a fraction of a
// second.
//
//   * At most `max_connections` connections are open. One more closes the
//     connection that has waited longest for its request or, when every one
//     is being answered, is itself closed at once.
//   * One thread accepts connections and reads every request's head with
//     poll(), without blocking: a connection takes a worker only once its
//     whole head (at most `max_head_bytes`) has arrived, so idle or trickling
//     connections (slowloris) hold no worker. A connection that has not sent
//     a whole head within `request_timeout` of opening, or of its previous
//     response, is closed.
//   * `threads` workers answer the complete requests; a response the client
//     does not take within `write_timeout` is cut.
//   * Its threads run at the lowest CPU priority (nice 19): on cores that the
//     process's own work keeps busy they get only what it leaves.
//
// Parsing, routing and writing are cpp-httplib's: routes() is an
// httplib::Server to configure before Start() (Get, set_pre_routing_handler,
// set_default_headers, ...), never to listen itself. Range headers are
// ignored (every response is whole), and httplib never sees Accept-Encoding,
// so it compresses no response (it would compress every text or JSON body
// anew, brotli at quality 11); a handler sends bytes compressed ahead of time
// with its own Content-Encoding when AcceptsGzip(request).
//
// Example:
//
//   HttpServer server({.port = 0});
//   server.routes().Get("/", [](const httplib::Request&,
//                               httplib::Response& res) {
//     res.set_content("hello", "text/plain");
//   });
//   absl::Status started = server.Start();  // then server.port()
//   ...                                     // serves until destroyed

#ifndef TRAIN_DASHBOARD_HTTP_SERVER_H_
#define TRAIN_DASHBOARD_HTTP_SERVER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "httplib.h"

namespace dive::train {

struct HttpServerOptions {
  int port = 0;  // 0: any free port
  int max_connections = 64;
  int threads = 4;
  size_t max_head_bytes = 16 << 10;  // request line and headers
  std::chrono::milliseconds request_timeout{5000};
  std::chrono::milliseconds write_timeout{5000};
  int max_requests_per_connection = 100;
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The routes and handlers, to set before Start().
  httplib::Server& routes() { return router_; }

  // Listens on 127.0.0.1:port and serves from threads of its own.
  // FailedPrecondition naming the address if it cannot listen there.
  absl::Status Start();
  // Closes every connection and ends the threads at once: a handler still
  // running finishes, and its response goes only as far as the socket takes
  // it without waiting.
  void Stop();

  int port() const { return port_; }
  // The connections open now (for tests).
  int open_connections() const { return open_; }

  // Whether the client of `request` (a request this server handed to a
  // handler) takes gzip.
  static bool AcceptsGzip(const httplib::Request& request);

 private:
  using Clock = std::chrono::steady_clock;
  struct Connection {
    int fd = -1;
    std::string head;  // received, not yet parsed: a request head or more
    Clock::time_point waiting_since;
    int requests = 0;  // answered so far
  };
  // httplib::Server with its request processing (protected) opened up.
  class Router : public httplib::Server {
   public:
    bool Answer(httplib::Stream& stream, bool close_connection,
                bool& connection_closed);
    // The listening socket, or -1 once stopping (httplib's content
    // providers write only while it is set).
    void SetListening(int fd) { svr_sock_ = fd; }
  };

  // What has arrived of a connection's request head.
  enum Head { kPartial, kWhole, kClosed };

  void AcceptLoop();
  // Accepts the connections waiting in the backlog, a few, into `waiting`.
  void Accept(std::vector<std::unique_ptr<Connection>>& waiting);
  // Reads what the client has sent, without blocking.
  Head ReadHead(Connection& c);
  void WorkLoop();
  // Answers one request of `c`; false when `c` is to be closed.
  bool Answer(Connection& c);
  // Hands `c`, whose head is whole, to the workers.
  void Dispatch(std::unique_ptr<Connection> c);
  void Close(std::unique_ptr<Connection> c);
  void Wake();

  const HttpServerOptions options_;
  Router router_;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd that interrupts the accept loop's poll
  std::atomic<int> open_{0};
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::vector<std::thread> workers_;

  std::mutex mutex_;
  std::condition_variable ready_cv_;
  std::deque<std::unique_ptr<Connection>> ready_;      // for the workers
  std::vector<std::unique_ptr<Connection>> returned_;  // kept alive, by them
};

}  // namespace dive::train

#endif  // TRAIN_DASHBOARD_HTTP_SERVER_H_
