#include "train/dashboard/dashboard.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "httplib.h"
#include "tensor/json.h"
#include "train/dashboard/assets.h"

namespace dive::train {
namespace {

// Throughput is measured over this many latest steps.
constexpr size_t kRateWindow = 20;
// The profiler's per-layer numbers are copied at most this often.
constexpr auto kLayerCopyInterval = std::chrono::milliseconds(250);

// A JSON number; NaN and infinities (a diverged loss) become null.
std::string Num(double v) {
  return std::isfinite(v) ? absl::StrFormat("%.9g", v) : "null";
}

const char* UnitStatName(UnitStat stat) {
  switch (stat) {
    case UnitStat::kZero:
      return "\"zero\"";
    case UnitStat::kSaturated:
      return "\"saturated\"";
    case UnitStat::kNone:
      break;
  }
  return "null";
}

// The reason phrase of the statuses this server sends.
const char* Reason(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 500:
      return "Internal Server Error";
    default:
      return "Error";
  }
}

// SO_REUSEADDR alone: httplib's default also sets SO_REUSEPORT, which would
// let another process bind the same port and take the dashboard's
// connections.
void ReuseAddressOnly(socket_t sock) {
  const int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

}  // namespace

Dashboard::Dashboard(DashboardOptions options, const LayerProfiler* profiler)
    : options_(std::move(options)),
      profiler_(profiler),
      server_(std::make_unique<httplib::Server>()) {}

absl::StatusOr<std::unique_ptr<Dashboard>> Dashboard::Start(
    DashboardOptions options, const LayerProfiler* profiler) {
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("dashboard port ", options.port,
                     " is not in 0..65535 (0: any free port)"));
  }
  std::unique_ptr<Dashboard> d(new Dashboard(std::move(options), profiler));
  httplib::Server& server = *d->server_;
  server.set_socket_options(ReuseAddressOnly);
  server.set_read_timeout(5);
  server.set_write_timeout(5);
  server.set_payload_max_length(1 << 10);
  d->Route();
  const int wanted = d->options_.port;
  if (wanted == 0) {
    d->port_ = server.bind_to_any_port("127.0.0.1");
    if (d->port_ <= 0) {
      return absl::FailedPreconditionError(
          "cannot listen on any port of 127.0.0.1");
    }
  } else {
    if (!server.bind_to_port("127.0.0.1", wanted)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot listen on 127.0.0.1:", wanted,
          " (in use, or below 1024 without privileges); pick another port, "
          "or 0 for any free one"));
    }
    d->port_ = wanted;
  }
  auto ended = std::make_shared<std::atomic<bool>>(false);
  d->thread_ = std::thread([&server, ended] {
    server.listen_after_bind();
    *ended = true;
  });
  // Until the thread runs the accept loop, `stop()` would not end it (and
  // the destructor would wait forever): wait for it (httplib 0.11 has no
  // wait_until_ready), or for the loop to have failed.
  while (!server.is_running() && !*ended) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (*ended) {
    return absl::InternalError(absl::StrCat(
        "the server on 127.0.0.1:", d->port_, " stopped as it started"));
  }
  return d;
}

Dashboard::~Dashboard() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string Dashboard::url() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/");
}

void Dashboard::Route() {
  httplib::Server& server = *server_;
  using httplib::Request;
  using httplib::Response;
  using Handled = httplib::Server::HandlerResponse;
  server.set_default_headers({
      {"Content-Security-Policy",
       "default-src 'self'; frame-ancestors 'none'; form-action 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
      {"Cache-Control", "no-store"},
  });
  // Before any route: the method, then the Host header, which a page of
  // another site reaching 127.0.0.1 through DNS rebinding cannot set.
  server.set_pre_routing_handler([this](const Request& req, Response& res) {
    if (req.method != "GET" && req.method != "HEAD") {
      res.status = 405;
      res.set_header("Allow", "GET, HEAD");
      return Handled::Handled;
    }
    const std::string host = req.get_header_value("Host");
    if (host != absl::StrCat("127.0.0.1:", port_) &&
        host != absl::StrCat("localhost:", port_)) {
      res.status = 403;
      return Handled::Handled;
    }
    return Handled::Unhandled;
  });
  // Every error a short text naming its status, whatever produced it.
  server.set_error_handler([](const Request&, Response& res) {
    res.set_content(absl::StrCat(res.status, " ", Reason(res.status), "\n"),
                    "text/plain; charset=utf-8");
  });
  server.set_exception_handler([](const Request&, Response& res,
                                  std::exception_ptr) { res.status = 500; });
  const auto asset = [&server](const char* path, const char* content,
                               size_t size, const char* type) {
    server.Get(path, [content, size, type](const Request&, Response& res) {
      res.set_content(content, size, type);
    });
  };
  asset("/", dashboard_assets::kIndexHtml, dashboard_assets::kIndexHtmlSize,
        "text/html; charset=utf-8");
  asset("/dashboard.js", dashboard_assets::kDashboardJs,
        dashboard_assets::kDashboardJsSize, "text/javascript; charset=utf-8");
  asset("/dashboard.css", dashboard_assets::kDashboardCss,
        dashboard_assets::kDashboardCssSize, "text/css; charset=utf-8");
  asset("/chart.js", dashboard_assets::kChartJs, dashboard_assets::kChartJsSize,
        "text/javascript; charset=utf-8");
  server.Get("/api/metrics", [this](const Request& req, Response& res) {
    int64_t since = -1;
    for (const auto& [key, value] : req.params) {
      if (key != "since" || !absl::SimpleAtoi(value, &since) || since < -1) {
        res.status = 400;
        return;
      }
    }
    res.set_content(MetricsJson(since), "application/json");
  });
}

void Dashboard::SetState(std::string state) {
  std::lock_guard<std::mutex> lock(mutex_);
  state_ = std::move(state);
}

absl::Status Dashboard::OnStep(const TrainState& state, const StepInfo& step) {
  const Clock::time_point now = Clock::now();
  if (profiler_ != nullptr && now - last_layer_copy_ >= kLayerCopyInterval) {
    CopyLayers();
    last_layer_copy_ = now;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t global_step = state.position.global_step;
  steps_.push_back({global_step, step.loss, step.accuracy, step.lr});
  steps_per_epoch_ = step.steps_per_epoch;
  global_step_ = global_step;
  epoch_ = state.position.epoch + 1;  // the one in progress
  lr_ = step.lr;
  recent_.emplace_back(now, step.batch_size);
  if (recent_.size() > kRateWindow) recent_.pop_front();
  if (first_step_ < 0) {
    first_step_ = global_step;
    first_step_time_ = now;
  }
  return absl::OkStatus();
}

absl::Status Dashboard::OnEpoch(const TrainState&, const EpochMetrics& m) {
  if (profiler_ != nullptr) CopyLayers();
  std::lock_guard<std::mutex> lock(mutex_);
  epochs_.push_back(m);
  epoch_ = m.epoch;
  return absl::OkStatus();
}

void Dashboard::CopyLayers() {
  std::vector<LayerStats> layers = profiler_->Layers();
  const int64_t steps = profiler_->steps();
  std::lock_guard<std::mutex> lock(mutex_);
  layers_ = std::move(layers);
  layer_steps_ = steps;
}

std::string Dashboard::MetricsJson(int64_t since_step) const {
  std::lock_guard<std::mutex> lock(mutex_);
  double examples_per_sec = 0;
  if (recent_.size() >= 2) {
    int64_t examples = 0;
    for (size_t i = 1; i < recent_.size(); ++i) examples += recent_[i].second;
    const double seconds = std::chrono::duration<double>(recent_.back().first -
                                                         recent_.front().first)
                               .count();
    if (seconds > 0) examples_per_sec = examples / seconds;
  }
  double eta_seconds = 0;
  const int64_t total_steps = options_.epochs * steps_per_epoch_;
  if (first_step_ >= 0 && global_step_ > first_step_ &&
      total_steps > global_step_ && state_ == "training") {
    const double per_step =
        std::chrono::duration<double>(Clock::now() - first_step_time_).count() /
        (global_step_ - first_step_);
    eta_seconds = per_step * (total_steps - global_step_);
  }

  std::string out = absl::StrCat(
      "{\"title\":", JsonQuote(options_.title),
      ",\"state\":", JsonQuote(state_), ",\"epochs_total\":", options_.epochs,
      ",\"steps_per_epoch\":", steps_per_epoch_,
      ",\"global_step\":", global_step_, ",\"epoch\":", epoch_,
      ",\"lr\":", Num(lr_), ",\"examples_per_sec\":", Num(examples_per_sec),
      ",\"eta_seconds\":", Num(eta_seconds), ",\"steps\":[");
  // Steps are in increasing order: skip to the first after since_step.
  auto first = std::upper_bound(
      steps_.begin(), steps_.end(), since_step,
      [](int64_t s, const Step& step) { return s < step.step; });
  for (auto it = first; it != steps_.end(); ++it) {
    absl::StrAppend(&out, it == first ? "" : ",", "[", it->step, ",",
                    Num(it->loss), ",", Num(it->accuracy), ",", Num(it->lr),
                    "]");
  }
  out += "],\"epochs\":[";
  for (size_t i = 0; i < epochs_.size(); ++i) {
    const EpochMetrics& m = epochs_[i];
    absl::StrAppend(
        &out, i == 0 ? "" : ",", "{\"epoch\":", m.epoch,
        ",\"loss\":", Num(m.loss), ",\"train_acc\":", Num(m.train_acc),
        ",\"test_acc\":", Num(m.test_acc), ",\"seconds\":", Num(m.seconds),
        ",\"examples_per_sec\":", Num(m.examples_per_sec), "}");
  }
  absl::StrAppend(&out, "],\"layer_steps\":", layer_steps_, ",\"layers\":[");
  const double steps = std::max<int64_t>(layer_steps_, 1);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerStats& l = layers_[i];
    absl::StrAppend(&out, i == 0 ? "" : ",", "{\"name\":", JsonQuote(l.name),
                    ",\"description\":", JsonQuote(l.description),
                    ",\"depth\":", l.depth,
                    ",\"forward_ms\":", Num(1e3 * l.forward_seconds / steps),
                    ",\"backward_ms\":", Num(1e3 * l.backward_seconds / steps),
                    ",\"sampled\":", l.sampled ? "true" : "false",
                    ",\"mean\":", Num(l.mean), ",\"std\":", Num(l.stddev),
                    ",\"unit_stat\":", UnitStatName(l.unit_stat),
                    ",\"unit_fraction\":", Num(l.unit_fraction), "}");
  }
  out += "],\"classes\":[";
  for (size_t i = 0; i < options_.class_names.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ",",
                    JsonQuote(options_.class_names[i]));
  }
  out += "],\"confusion\":[";
  if (!epochs_.empty()) {
    const auto& confusion = epochs_.back().confusion;
    for (size_t i = 0; i < confusion.size(); ++i) {
      absl::StrAppend(&out, i == 0 ? "[" : ",[",
                      absl::StrJoin(confusion[i], ","), "]");
    }
  }
  return out + "]}";
}

}  // namespace dive::train
