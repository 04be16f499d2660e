// File: train/dashboard/dashboard.h
// -----------------------------------------------------------------------------
//
// A live training dashboard in the browser: `--dashboard=PORT` on every
// trainer. `Dashboard` is one more observer of the training loop
// (train/observer.h) and serves, on 127.0.0.1 only, one page that polls the
// run's numbers once a second and draws them with Chart.js (Debian's
// libjs-chart.js, compiled into the binary: nothing is fetched at run time):
//
//   * loss and accuracy per step and per epoch (the book's plot, live),
//     examples/s, ETA, learning rate and the run's state;
//   * per-layer forward and backward time, the roofline of `--profile`
//     (GFLOP/s, % of peak and of the layer's roof, bytes moved, FLOP/byte,
//     compute- or memory-bound; the same numbers as its table) and
//     activation statistics (mean, std, dead ReLUs, saturated sigmoids)
//     from a `LayerProfiler`;
//   * the test set's confusion matrix at each epoch's end;
//   * a table of the epochs with the numbers of metrics.csv.
//
// The server answers GET (and HEAD) of five paths alone: "/" (the page),
// "/dashboard.js", "/dashboard.css", "/chart.js" and
// "/api/metrics?since=STEP" (the JSON below). Anything else is a 4xx: an
// unknown path 404, a method other than GET 405, a Host header other than the
// loopback address 403 (a DNS-rebinding page cannot read it), a malformed
// request or query 400. Responses forbid framing and any script not served by
// the page.
//
//   {"title": ..., "state": "training" | "finished" | "failed: ...",
//    "epochs_total": 10, "steps_per_epoch": 235, "global_step": 412,
//    "epoch": 2,   // the epoch in progress, or the last one done
//    "lr": 0.9, "examples_per_sec": 40100.5, "eta_seconds": 12.5,
//    "full": true,  // false: "steps" continues the client's STEP
//    "buckets": [[first_step, last_step, loss, accuracy, lr,
//                 loss_min, loss_max], ...],
//    "steps": [[step, loss, accuracy, lr], ...],
//    "epochs": [{"epoch": 1, "loss": ..., "train_acc": ..., "test_acc": ...,
//                "seconds": ..., "examples_per_sec": ...}, ...],
//    "layer_steps": 412,   // the training steps the layer numbers cover
//    "roofline": {"cpu": ..., "peak": "fma", "threads": 2,  // or null
//                 "peak_gflops": ..., "bandwidth_gbs": ..., "ridge": ...},
//    "layers": [{"name": "0", "description": "Conv2d(...)", "depth": 1,
//                "forward_ms": ..., "backward_ms": ...,   // per step
//                "forward_gflops": ..., "backward_gflops": ...,  // or null
//                "fraction_of_peak": ..., "fraction_of_roof": ...,
//                "mb_per_step": ..., "flop_per_byte": ...,   // or null
//                "bound": "compute" | "memory" | null,
//                "sampled": true, "mean": ...,
//                "std": ..., "unit_stat": "zero" | "saturated" | null,
//                "unit_fraction": ...}, ...],
//    "classes": ["t-shirt", ...], "confusion": [[...], ...]}
//
// The per-step history is bounded (train/dashboard/history.h): the latest
// 2,048 steps whole, the older ones in at most 1,024 buckets (their mean loss
// and accuracy, the last lr, the range of the losses). When STEP is the last
// step a client has, "full" is false, "buckets" empty and "steps" holds the
// steps after it; otherwise (no `since`, -1, or a STEP that has since left
// the latest steps) "full" is true and "buckets" and "steps" are the whole
// history: about 150 KB of JSON at a million steps, and no more after.
//
// Out of training's way: nothing a client does can slow training, make it
// fail, or grow its memory.
//
//   * The server (train/dashboard/http_server.h) holds at most 64
//     connections, reads request heads without a worker (slowloris and idle
//     connections cost a poll slot), closes a connection whose request has
//     not arrived within 5 s, and runs its threads at nice 19.
//   * The static files are gzipped at build time (gzip -9n) and sent as they
//     are to clients that take gzip; nothing is compressed per request.
//   * The training thread appends to the history under a mutex that OnStep
//     only try-locks: while a reader holds it, the step waits in a list of
//     the training thread's own for the next call (up to 1,024 steps).
//     Readers hold it only to copy the bounded history, and build the JSON
//     outside it.
//   * Destroying the dashboard closes every connection and returns within
//     ~0.1 s even with requests in flight (a handler that is running
//     finishes first: milliseconds).
//
// Example:
//
//   absl::StatusOr<std::unique_ptr<Dashboard>> d =
//       Dashboard::Start({.port = 8080, .title = spec.description}, &profiler);
//   options.observers.push_back(d->get());   // then Train(...)

#ifndef TRAIN_DASHBOARD_DASHBOARD_H_
#define TRAIN_DASHBOARD_DASHBOARD_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "train/dashboard/history.h"
#include "train/layer_profiler.h"
#include "train/observer.h"

namespace dive::train {

class HttpServer;

struct DashboardOptions {
  int port = 0;  // 0: any free port
  std::string title;
  int64_t epochs = 0;  // of the whole run, for the ETA
  std::vector<std::string> class_names;
};

class Dashboard : public TrainObserver {
 public:
  // Listens on 127.0.0.1:`port` and serves from threads of its own until
  // destroyed. `profiler` (may be null; not owned) supplies the per-layer
  // numbers. FailedPrecondition naming the port if it cannot listen there.
  static absl::StatusOr<std::unique_ptr<Dashboard>> Start(
      DashboardOptions options, const LayerProfiler* profiler);
  ~Dashboard() override;

  int port() const;
  std::string url() const;  // "http://127.0.0.1:PORT/"

  // The run ended: "finished", or "failed: <why>". Like OnStep and OnEpoch,
  // called by the training thread.
  void SetState(std::string state);

  absl::Status OnStep(const TrainState& state, const StepInfo& step) override;
  absl::Status OnEpoch(const TrainState& state, const EpochMetrics& m) override;

  // The body of /api/metrics?since=`since_step` (-1: the whole history).
  std::string MetricsJson(int64_t since_step) const;

 private:
  using Clock = std::chrono::steady_clock;
  // The run's numbers besides the histories.
  struct Progress {
    std::string state = "training";
    int64_t steps_per_epoch = 0;
    int64_t global_step = 0;
    int64_t epoch = 0;
    float lr = 0;
    double examples_per_sec = 0;
    int64_t first_step = -1;  // of this process, and when it ended
    Clock::time_point first_step_time;
    int64_t layer_steps = 0;
    // The profiler's, once it has layers (measured then, on first use).
    std::shared_ptr<const Roofline> roofline;
  };
  struct Snapshot;

  Dashboard(DashboardOptions options, const LayerProfiler* profiler);
  void Route();
  // Copies the profiler's layer table (a long one for a large model) into
  // pending_layers_, to publish with the next step.
  void CopyLayers();
  // Moves what the training thread has gathered into published_; mutex_
  // held.
  void PublishLocked();
  // What MetricsJson(`since_step`) shows, copied under mutex_.
  Snapshot TakeSnapshot(int64_t since_step) const;

  const DashboardOptions options_;
  const LayerProfiler* const profiler_;
  std::unique_ptr<HttpServer> server_;

  // The training thread's own: what it has not published yet, and what it
  // measures throughput with.
  Progress progress_;
  std::vector<StepPoint> pending_steps_;
  std::shared_ptr<const std::vector<LayerStats>> pending_layers_;
  std::vector<EpochMetrics> epochs_;
  // (time, batch size) of the latest steps, a ring: examples/s over them.
  static constexpr size_t kRateWindow = 20;
  std::array<std::pair<Clock::time_point, int64_t>, kRateWindow> rate_{};
  int64_t steps_seen_ = 0;
  Clock::time_point last_layer_copy_;

  // Published by the training thread, copied by the server's; under mutex_.
  mutable std::mutex mutex_;
  Progress published_;
  StepHistory history_;
  std::shared_ptr<const std::vector<EpochMetrics>> published_epochs_;
  std::shared_ptr<const std::vector<LayerStats>> published_layers_;
};

}  // namespace dive::train

#endif  // TRAIN_DASHBOARD_DASHBOARD_H_
