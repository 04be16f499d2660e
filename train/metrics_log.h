// File: train/metrics_log.h
// -----------------------------------------------------------------------------
//
// A run's metrics in its directory: `MetricsObserver` appends each epoch's
// row to metrics.csv (replaced atomically, never through a symbolic link)
//
//   epoch,loss,train_acc,test_acc,seconds,examples_per_sec
//   1,0.812345,0.701234,0.774500,2.345,25586.4
//
// and redraws metrics.png (loss and accuracy curves, train/plot.h) from it.
// `TrimMetricsCsv` makes the CSV of a resumed run end where its checkpoint
// does.
//
// Example:
//
//   MetricsObserver metrics("/tmp/lenet", "LeNet-5", /*fresh=*/true);
//   options.observers.push_back(&metrics);

#ifndef TRAIN_METRICS_LOG_H_
#define TRAIN_METRICS_LOG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "train/observer.h"

namespace dive::train {

class MetricsObserver : public TrainObserver {
 public:
  // Writes into `dir`; `fresh`: the first row starts a new CSV (else rows
  // are appended to the one there). `title` heads the plot.
  MetricsObserver(const std::string& dir, std::string title, bool fresh);

  // Appends the row, then redraws the plot (a plot that cannot be drawn,
  // e.g. without gnuplot, is a warning).
  absl::Status OnEpoch(const TrainState& state, const EpochMetrics& m) override;

 private:
  const std::string csv_, png_, title_;
  bool fresh_;
};

// TrimMetricsCsv()
//
// Keeps the header and the complete rows of epochs 1..last_epoch of the CSV
// at `path`, in order. Each epoch appends its row before saving its
// checkpoint, so a run killed in between leaves one row too many (the
// resumed run trains that epoch again); it is dropped here, as is a partial
// last line.
absl::Status TrimMetricsCsv(const std::string& path, int64_t last_epoch);

}  // namespace dive::train

#endif  // TRAIN_METRICS_LOG_H_
