#include "cheatsheet/sheet_figure.h"

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "cheatsheet/plot.h"

ABSL_FLAG(std::string, out, "/tmp/dive_cheatsheet",
          "directory for the figure's .dat and .png files (created if "
          "missing; relative to where `bazel run` was started)");

namespace dive::cheatsheet {

int ReportFigure(const absl::StatusOr<std::string>& png) {
  if (!png.ok()) {
    std::cerr << "no figure: " << png.status() << "\n";
    return png.status().code() == absl::StatusCode::kUnavailable ? 0 : 1;
  }
  std::cout << "figure: " << *png << "\n";
  return 0;
}

int DrawSheetFigure(const std::string& data_name, absl::string_view data,
                    absl::string_view script, const std::string& png_name,
                    int width, int height) {
  return ReportFigure(WriteFigure(absl::GetFlag(FLAGS_out), data_name, data,
                                  script, png_name, width, height));
}

}  // namespace dive::cheatsheet
