// File: train/dashboard/dashboard.h
// -----------------------------------------------------------------------------
//
// A live training dashboard in the browser: `--dashboard=PORT` on every
// trainer. `Dashboard` is one more observer of the training loop
// (train/training.h) and serves, on 127.0.0.1 only, one page that polls the
// run's numbers once a second and draws them with Chart.js (Debian's
// libjs-chart.js, compiled into the binary: nothing is fetched at run time):
//
//   * loss and accuracy per step and per epoch (the book's plot, live),
//     examples/s, ETA, learning rate and the run's state;
//   * per-layer forward and backward time and activation statistics (mean,
//     std, dead ReLUs, saturated sigmoids) from a `LayerProfiler`;
//   * the test set's confusion matrix at each epoch's end;
//   * a table of the epochs with the numbers of metrics.csv.
//
// The server answers GET (and HEAD) of five paths alone: "/" (the page),
// "/dashboard.js", "/dashboard.css", "/chart.js" and
// "/api/metrics?since=STEP" (the JSON below, with the steps after STEP; all
// of them without `since`). Anything else is a 4xx: an unknown path 404, a
// method other than GET 405, a Host header other than the loopback address
// 403 (a DNS-rebinding page cannot read it), a malformed request or query
// 400. Responses forbid framing and any script not served by the page.
//
//   {"title": ..., "state": "training" | "finished" | "failed: ...",
//    "epochs_total": 10, "steps_per_epoch": 235, "global_step": 412,
//    "epoch": 2,   // the epoch in progress, or the last one done
//    "lr": 0.9, "examples_per_sec": 40100.5, "eta_seconds": 12.5,
//    "steps": [[step, loss, accuracy, lr], ...],
//    "epochs": [{"epoch": 1, "loss": ..., "train_acc": ..., "test_acc": ...,
//                "seconds": ..., "examples_per_sec": ...}, ...],
//    "layer_steps": 412,   // the training steps the layer numbers cover
//    "layers": [{"name": "0", "description": "Conv2d(...)", "depth": 1,
//                "forward_ms": ..., "backward_ms": ...,   // per step
//                "sampled": true, "mean": ...,
//                "std": ..., "unit_stat": "zero" | "saturated" | null,
//                "unit_fraction": ...}, ...],
//    "classes": ["t-shirt", ...], "confusion": [[...], ...]}
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
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "train/layer_profiler.h"
#include "train/training.h"

namespace httplib {
class Server;
}

namespace dive::train {

struct DashboardOptions {
  int port = 0;  // 0: any free port
  std::string title;
  int64_t epochs = 0;  // of the whole run, for the ETA
  std::vector<std::string> class_names;
};

class Dashboard : public TrainObserver {
 public:
  // Listens on 127.0.0.1:`port` and serves from a thread of its own until
  // destroyed. `profiler` (may be null; not owned) supplies the per-layer
  // numbers. FailedPrecondition naming the port if it cannot listen there.
  static absl::StatusOr<std::unique_ptr<Dashboard>> Start(
      DashboardOptions options, const LayerProfiler* profiler);
  ~Dashboard() override;

  int port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:PORT/"

  // The run ended: "finished", or "failed: <why>".
  void SetState(std::string state);

  absl::Status OnStep(const TrainState& state, const StepInfo& step) override;
  absl::Status OnEpoch(const TrainState& state, const EpochMetrics& m) override;

  // The body of /api/metrics?since=`since_step`.
  std::string MetricsJson(int64_t since_step) const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Step {
    int64_t step;
    double loss, accuracy, lr;
  };

  Dashboard(DashboardOptions options, const LayerProfiler* profiler);
  void Route();
  // Copies the profiler's layer table (outside mutex_: it is long for a
  // large model) and publishes it to the server's threads.
  void CopyLayers();

  const DashboardOptions options_;
  const LayerProfiler* const profiler_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;

  // Written by the training thread, read by the server's; under mutex_.
  mutable std::mutex mutex_;
  std::string state_ = "training";
  std::vector<Step> steps_;
  std::vector<EpochMetrics> epochs_;
  std::vector<LayerStats> layers_;
  int64_t layer_steps_ = 0;
  int64_t steps_per_epoch_ = 0;
  int64_t global_step_ = 0;
  int64_t epoch_ = 0;
  float lr_ = 0;
  // Throughput over the latest steps (time, examples), and the ETA's base.
  std::deque<std::pair<Clock::time_point, int64_t>> recent_;
  Clock::time_point first_step_time_;
  int64_t first_step_ = -1;
  // When the profiler's numbers were last copied (training thread only).
  Clock::time_point last_layer_copy_;
};

}  // namespace dive::train

#endif  // TRAIN_DASHBOARD_DASHBOARD_H_
