// File: cheatsheet/sheet_figure.h
// -----------------------------------------------------------------------------
//
// The `--out` flag of the sections' binaries that draw a figure (mlp,
// weight_decay), and what they do with it last: write the figure's data,
// plot it, and report where it went.
//
// Example:
//
//   return DrawSheetFigure("curve.dat", table, kCurveScript, "curve.png", 900,
//                          560);

#ifndef CHEATSHEET_SHEET_FIGURE_H_
#define CHEATSHEET_SHEET_FIGURE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dive::cheatsheet {

// ReportFigure()
//
// Prints "figure: <path>" to stdout for a drawn figure and returns 0;
// otherwise prints "no figure: <status>" to stderr and returns the exit code:
// 0 when only the drawing was unavailable (kUnavailable: no gnuplot), else 1.
int ReportFigure(const absl::StatusOr<std::string>& png);

// DrawSheetFigure()
//
// WriteFigure (cheatsheet/plot.h) into the directory of the `--out` flag,
// then ReportFigure; returns the binary's exit code.
int DrawSheetFigure(const std::string& data_name, absl::string_view data,
                    absl::string_view script, const std::string& png_name,
                    int width, int height);

}  // namespace dive::cheatsheet

#endif  // CHEATSHEET_SHEET_FIGURE_H_
