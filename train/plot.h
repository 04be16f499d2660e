// File: train/plot.h
// -----------------------------------------------------------------------------
//
// Draws the training curves of a metrics CSV (as written by the trainer:
// epoch, loss, train_acc, test_acc, ...) into a PNG with gnuplot, like the
// book's animated plots: train loss, train accuracy and test accuracy against
// the epoch.
//
// No string from the user ever reaches gnuplot as code: gnuplot runs without
// a shell (posix_spawn), its script is fixed text plus the numbers parsed
// from the CSV (re-formatted here), the title is reduced to a safe character
// set, and the PNG goes to gnuplot's standard output, which is `png_fd`; no
// path is part of the script.
//
// Example:
//
//   absl::Status s = PlotMetrics(csv_text, fd, "LeNet-5");

#ifndef TRAIN_PLOT_H_
#define TRAIN_PLOT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dive::train {

// Writes the PNG of `csv` (the text of a metrics CSV; rows that do not parse
// are skipped) to the open file `png_fd`. Unavailable when gnuplot is not
// installed, Internal when it fails (its exit status is in the message).
absl::Status PlotMetrics(absl::string_view csv, int png_fd,
                         const std::string& title);

// The gnuplot script PlotMetrics runs (exposed for tests).
std::string PlotScript(absl::string_view csv, const std::string& title);

}  // namespace dive::train

#endif  // TRAIN_PLOT_H_
