// File: train/plot.h
// -----------------------------------------------------------------------------
//
// dive's one way to draw with gnuplot, used by the trainers (the metrics
// plot) and by the cheat sheet's figures (cheatsheet/plot.h):
//
//   * `RunGnuplot` runs gnuplot without a shell (posix_spawn) on a script
//     given as its standard input, with its standard output (where
//     "set output" without a name sends the PNG) on a descriptor of the
//     caller's: no path is ever part of a script.
//   * `WritePng` draws into `png_path` through tensor/file_io.h's
//     AtomicFileWriter (aside, then renamed; never through a symlink or
//     over another user's file), so the file is always a whole image.
//   * `GnuplotQuote` is how a string of the user's (a title) goes into a
//     script: single-quoted, reduced to a safe character set.
//   * `PlotScript` draws a metrics CSV (as written by the
//     trainer: epoch, loss, train_acc, test_acc, ...) like the book's
//     animated plots: train loss, train accuracy and test accuracy against
//     the epoch. The script is fixed text, the quoted title and the numbers
//     parsed from the CSV (re-formatted here).
//
// Example:
//
//   absl::Status s = WritePng("/tmp/run/metrics.png",
//                             PlotScript(csv_text, "LeNet-5"));

#ifndef TRAIN_PLOT_H_
#define TRAIN_PLOT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dive::train {

// Runs gnuplot on `script` with its standard output on `out_fd` and, when
// `working_dir_fd` >= 0, that directory as its working directory (for a
// script that reads data files by name). Unavailable when gnuplot is not
// installed, Internal when it fails (its exit status and the last line it
// printed on standard error are in the message).
absl::Status RunGnuplot(absl::string_view script, int out_fd,
                        int working_dir_fd = -1);

// Runs `script`, which must print a PNG on standard output, into
// "<png_path>.tmp" and renames that over `png_path` (AtomicFileWriter).
// Internal, and `png_path` left as it was, when gnuplot fails or prints no
// PNG; the errors of RunGnuplot and AtomicFileWriter otherwise.
absl::Status WritePng(const std::string& png_path, absl::string_view script,
                      int working_dir_fd = -1);

// `s` as a gnuplot string literal: in single quotes, every character outside
// [A-Za-z0-9 _.,:()+/-] replaced by '?', so nothing in it can end the
// literal or be expanded by gnuplot (no quotes, backquotes, '@', '$', '\\'
// or control characters).
std::string GnuplotQuote(absl::string_view s);

// The gnuplot script that draws `csv` (the text of a metrics CSV; rows that
// do not parse are skipped) as a PNG on its standard output.
std::string PlotScript(absl::string_view csv, const std::string& title);

}  // namespace dive::train

#endif  // TRAIN_PLOT_H_
