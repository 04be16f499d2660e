// File: tools/plot.h
// -----------------------------------------------------------------------------
//
// Draws the training curves of a metrics CSV (as written by the trainer:
// epoch, loss, train_acc, test_acc, ...) into a PNG with gnuplot, like the
// book's animated plots: train loss, train accuracy and test accuracy against
// the epoch.
//
// Example:
//
//   absl::Status s = PlotMetrics("/tmp/run/metrics.csv",
//                                "/tmp/run/metrics.png", "LeNet-5");

#ifndef TOOLS_PLOT_H_
#define TOOLS_PLOT_H_

#include <string>

#include "absl/status/status.h"

namespace dive::tools {

// Writes `png_path`; Unavailable when gnuplot is not installed, Internal when
// it fails (its exit status is in the message).
absl::Status PlotMetrics(const std::string& csv_path,
                         const std::string& png_path, const std::string& title);

}  // namespace dive::tools

#endif  // TOOLS_PLOT_H_
