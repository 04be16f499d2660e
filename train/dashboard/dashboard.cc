#include "train/dashboard/dashboard.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "tensor/json.h"
#include "train/dashboard/assets.h"
#include "train/dashboard/http_server.h"

namespace dive::train {
namespace {

// The profiler's per-layer numbers are copied at most this often.
constexpr auto kLayerCopyInterval = std::chrono::milliseconds(250);
// The training thread publishes at least once this many steps even while
// readers keep finding the lock taken (it then waits for it).
constexpr size_t kMaxPendingSteps = 1024;

// A JSON number of 9 significant digits; NaN and infinities (a diverged
// loss) become null.
OrderedJson Num(double v) { return JsonNumber(v, 9); }

OrderedJson UnitStatName(UnitStat stat) {
  switch (stat) {
    case UnitStat::kZero:
      return "zero";
    case UnitStat::kSaturated:
      return "saturated";
    case UnitStat::kNone:
      break;
  }
  return nullptr;
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

// The history's entries as JSON arrays.
OrderedJson StepJson(const StepPoint& p) {
  return OrderedJson::array({p.step, Num(p.loss), Num(p.accuracy), Num(p.lr)});
}
OrderedJson BucketJson(const StepBucket& b) {
  return OrderedJson::array({b.first_step, b.last_step, Num(b.mean_loss()),
                             Num(b.mean_accuracy()), Num(b.lr),
                             Num(b.loss_min), Num(b.loss_max)});
}

}  // namespace

// What MetricsJson shows: the run's numbers and a copy of the bounded
// history (steps and buckets) at one moment.
struct Dashboard::Snapshot {
  Progress progress;
  bool full = false;
  std::vector<StepBucket> buckets;
  std::vector<StepPoint> steps;
  std::shared_ptr<const std::vector<EpochMetrics>> epochs;
  std::shared_ptr<const std::vector<LayerStats>> layers;
};

Dashboard::Dashboard(DashboardOptions options, const LayerProfiler* profiler)
    : options_(std::move(options)),
      profiler_(profiler),
      server_(std::make_unique<HttpServer>(
          HttpServerOptions{.port = options_.port})),
      published_epochs_(std::make_shared<std::vector<EpochMetrics>>()),
      published_layers_(std::make_shared<std::vector<LayerStats>>()) {}

absl::StatusOr<std::unique_ptr<Dashboard>> Dashboard::Start(
    DashboardOptions options, const LayerProfiler* profiler) {
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("dashboard port ", options.port,
                     " is not in 0..65535 (0: any free port)"));
  }
  std::unique_ptr<Dashboard> d(new Dashboard(std::move(options), profiler));
  d->Route();
  if (absl::Status started = d->server_->Start(); !started.ok()) {
    return absl::Status(
        started.code(),
        absl::StrCat(started.message(),
                     "; pick another port, or 0 for any free one"));
  }
  return d;
}

// The server stops first: its handlers read this dashboard (server_
// included, so not server_.reset(), which empties it before the stop).
Dashboard::~Dashboard() { server_->Stop(); }

int Dashboard::port() const { return server_->port(); }

std::string Dashboard::url() const {
  return absl::StrCat("http://127.0.0.1:", port(), "/");
}

void Dashboard::Route() {
  httplib::Server& server = server_->routes();
  using httplib::Request;
  using httplib::Response;
  using Handled = httplib::Server::HandlerResponse;
  server.set_payload_max_length(1 << 10);
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
    if (host != absl::StrCat("127.0.0.1:", port()) &&
        host != absl::StrCat("localhost:", port())) {
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
  // The files as they are, or gzipped at build time for a client that
  // takes gzip.
  const auto asset = [&server](const char* path,
                               const dashboard_assets::Asset& file,
                               const char* type) {
    server.Get(path, [&file, type](const Request& req, Response& res) {
      res.set_header("Vary", "Accept-Encoding");
      if (HttpServer::AcceptsGzip(req)) {
        res.set_header("Content-Encoding", "gzip");
        res.set_content(reinterpret_cast<const char*>(file.gzip),
                        file.gzip_size, type);
      } else {
        res.set_content(file.data, file.size, type);
      }
    });
  };
  asset("/", dashboard_assets::kIndexHtml, "text/html; charset=utf-8");
  asset("/dashboard.js", dashboard_assets::kDashboardJs,
        "text/javascript; charset=utf-8");
  asset("/dashboard.css", dashboard_assets::kDashboardCss,
        "text/css; charset=utf-8");
  asset("/chart.js", dashboard_assets::kChartJs,
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
  progress_.state = std::move(state);
  std::lock_guard<std::mutex> lock(mutex_);
  PublishLocked();
}

absl::Status Dashboard::OnStep(const TrainState& state, const StepInfo& step) {
  const Clock::time_point now = Clock::now();
  const int64_t global_step = state.position.global_step;
  pending_steps_.push_back({.step = global_step,
                            .loss = step.loss,
                            .accuracy = step.accuracy,
                            .lr = step.lr});
  progress_.steps_per_epoch = step.steps_per_epoch;
  progress_.global_step = global_step;
  progress_.epoch = state.position.epoch + 1;  // the one in progress
  progress_.lr = step.lr;
  // Examples/s: the examples of the steps after the oldest in the window,
  // over the time since it.
  rate_[steps_seen_++ % kRateWindow] = {now, step.batch_size};
  const int64_t window = std::min<int64_t>(steps_seen_, kRateWindow);
  if (window >= 2) {
    int64_t examples = 0;
    for (int64_t i = steps_seen_ - window + 1; i < steps_seen_; ++i) {
      examples += rate_[i % kRateWindow].second;
    }
    const double seconds =
        std::chrono::duration<double>(
            now - rate_[(steps_seen_ - window) % kRateWindow].first)
            .count();
    if (seconds > 0) progress_.examples_per_sec = examples / seconds;
  }
  if (progress_.first_step < 0) {
    progress_.first_step = global_step;
    progress_.first_step_time = now;
  }
  if (profiler_ != nullptr && now - last_layer_copy_ >= kLayerCopyInterval) {
    CopyLayers();
    last_layer_copy_ = now;
  }
  // Never wait for a reader: while one copies, the step waits in
  // pending_steps_ for a later one (up to kMaxPendingSteps).
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock()) {
    if (pending_steps_.size() < kMaxPendingSteps) return absl::OkStatus();
    lock.lock();
  }
  PublishLocked();
  return absl::OkStatus();
}

absl::Status Dashboard::OnEpoch(const TrainState&, const EpochMetrics& m) {
  if (profiler_ != nullptr) CopyLayers();
  epochs_.push_back(m);
  auto epochs = std::make_shared<const std::vector<EpochMetrics>>(epochs_);
  progress_.epoch = m.epoch;
  std::lock_guard<std::mutex> lock(mutex_);
  published_epochs_ = std::move(epochs);
  PublishLocked();
  return absl::OkStatus();
}

void Dashboard::CopyLayers() {
  pending_layers_ =
      std::make_shared<const std::vector<LayerStats>>(profiler_->Layers());
  progress_.layer_steps = profiler_->steps();
  if (progress_.roofline == nullptr && progress_.layer_steps > 0) {
    progress_.roofline =
        std::make_shared<const Roofline>(profiler_->roofline());
  }
}

void Dashboard::PublishLocked() {
  for (const StepPoint& p : pending_steps_) history_.Add(p);
  pending_steps_.clear();
  published_ = progress_;
  if (pending_layers_ != nullptr) {
    published_layers_ = std::move(pending_layers_);
  }
}

Dashboard::Snapshot Dashboard::TakeSnapshot(int64_t since_step) const {
  Snapshot s;
  std::lock_guard<std::mutex> lock(mutex_);
  s.progress = published_;
  // The whole history unless `since_step` is the last step the client has:
  // one it did not have, or none at all (-1), or one of another run.
  const int64_t first = history_.first_recent_step();
  s.full = since_step < 0 || since_step < first - 1 ||
           since_step > published_.global_step;
  if (s.full) {
    s.buckets = history_.buckets();
    s.steps = history_.RecentAfter(-1);
  } else {
    s.steps = history_.RecentAfter(since_step);
  }
  s.epochs = published_epochs_;
  s.layers = published_layers_;
  return s;
}

std::string Dashboard::MetricsJson(int64_t since_step) const {
  // Everything below works on the copy, outside mutex_.
  const Snapshot s = TakeSnapshot(since_step);
  const Progress& p = s.progress;
  double eta_seconds = 0;
  const int64_t total_steps = options_.epochs * p.steps_per_epoch;
  if (p.first_step >= 0 && p.global_step > p.first_step &&
      total_steps > p.global_step && p.state == "training") {
    const double per_step =
        std::chrono::duration<double>(Clock::now() - p.first_step_time)
            .count() /
        (p.global_step - p.first_step);
    eta_seconds = per_step * (total_steps - p.global_step);
  }

  OrderedJson out = OrderedJson::object();
  out["title"] = options_.title;
  out["state"] = p.state;
  out["epochs_total"] = options_.epochs;
  out["steps_per_epoch"] = p.steps_per_epoch;
  out["global_step"] = p.global_step;
  out["epoch"] = p.epoch;
  out["lr"] = Num(p.lr);
  out["examples_per_sec"] = Num(p.examples_per_sec);
  out["eta_seconds"] = Num(eta_seconds);
  out["full"] = s.full;
  OrderedJson& buckets = out["buckets"] = OrderedJson::array();
  for (const StepBucket& b : s.buckets) buckets.push_back(BucketJson(b));
  OrderedJson& steps = out["steps"] = OrderedJson::array();
  for (const StepPoint& point : s.steps) steps.push_back(StepJson(point));
  OrderedJson& epochs = out["epochs"] = OrderedJson::array();
  for (const EpochMetrics& m : *s.epochs) {
    OrderedJson& e = epochs.emplace_back(OrderedJson::object());
    e["epoch"] = m.epoch;
    e["loss"] = Num(m.loss);
    e["train_acc"] = Num(m.train_acc);
    e["test_acc"] = Num(m.test_acc);
    e["seconds"] = Num(m.seconds);
    e["examples_per_sec"] = Num(m.examples_per_sec);
  }
  out["layer_steps"] = p.layer_steps;
  const double layer_steps = std::max<int64_t>(p.layer_steps, 1);
  if (p.roofline != nullptr) {
    const Roofline& r = *p.roofline;
    OrderedJson& j = out["roofline"] = OrderedJson::object();
    j["cpu"] = r.cpu;
    j["peak"] = r.peak_kind;
    j["threads"] = r.threads;
    j["peak_gflops"] = Num(r.peak_flops / 1e9);
    j["bandwidth_gbs"] = Num(r.bandwidth / 1e9);
    j["ridge"] = Num(r.ridge());
  } else {
    out["roofline"] = nullptr;
  }
  // A rate, or null where there is none (as the table leaves it blank).
  auto rate = [](int64_t flops, double seconds) {
    return flops > 0 && seconds > 0 ? Num(flops / seconds / 1e9)
                                    : OrderedJson(nullptr);
  };
  OrderedJson& layers = out["layers"] = OrderedJson::array();
  for (const LayerStats& l : *s.layers) {
    OrderedJson& j = layers.emplace_back(OrderedJson::object());
    j["name"] = l.name;
    j["description"] = l.description;
    j["depth"] = l.depth;
    j["forward_ms"] = Num(1e3 * l.forward_seconds / layer_steps);
    j["backward_ms"] = Num(1e3 * l.backward_seconds / layer_steps);
    j["forward_gflops"] = rate(l.forward_flops, l.forward_seconds);
    j["backward_gflops"] = rate(l.backward_flops, l.backward_seconds);
    const LayerRoofline r =
        p.roofline != nullptr ? RooflineOf(l, *p.roofline) : LayerRoofline();
    const bool on_roofline = p.roofline != nullptr && r.bytes > 0;
    j["fraction_of_peak"] =
        on_roofline ? Num(r.fraction_of_peak) : OrderedJson(nullptr);
    j["fraction_of_roof"] =
        on_roofline ? Num(r.fraction_of_roof) : OrderedJson(nullptr);
    j["mb_per_step"] =
        r.bytes > 0 ? Num(r.bytes / layer_steps / 1e6) : OrderedJson(nullptr);
    j["flop_per_byte"] = r.bytes > 0 ? Num(r.intensity) : OrderedJson(nullptr);
    if (on_roofline) {
      j["bound"] = r.compute_bound ? "compute" : "memory";
    } else {
      j["bound"] = nullptr;
    }
    j["sampled"] = l.sampled;
    j["mean"] = Num(l.mean);
    j["std"] = Num(l.stddev);
    j["unit_stat"] = UnitStatName(l.unit_stat);
    j["unit_fraction"] = Num(l.unit_fraction);
  }
  out["classes"] = options_.class_names;
  out["confusion"] = s.epochs->empty()
                          ? OrderedJson::array()
                          : OrderedJson(s.epochs->back().confusion);
  return JsonText(out);
}

}  // namespace dive::train
