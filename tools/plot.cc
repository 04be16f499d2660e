#include "tools/plot.h"

#include <sys/wait.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace dive::tools {
namespace {

// gnuplot string literal in single quotes.
std::string Quote(const std::string& s) {
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "''"}}), "'");
}

}  // namespace

absl::Status PlotMetrics(const std::string& csv_path,
                         const std::string& png_path,
                         const std::string& title) {
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
    return absl::UnavailableError("gnuplot is not installed (tools/setup.sh)");
  }
  const std::string script = absl::StrCat(
      "set terminal pngcairo size 800,500 font 'sans,11'\n", "set output ",
      Quote(png_path), "\n", "set datafile separator ','\n", "set title ",
      Quote(title), "\n", "set xlabel 'epoch'\n", "set grid\n",
      "set key outside bottom center horizontal\n", "set yrange [0:*]\n",
      "plot ", Quote(csv_path),
      " using 1:2 skip 1 with linespoints lw 2 title 'train loss', \\\n",
      "  '' using 1:3 skip 1 with linespoints lw 2 dt 2 title 'train acc', "
      "\\\n",
      "  '' using 1:4 skip 1 with linespoints lw 2 dt 4 title 'test acc'\n");
  FILE* pipe = popen("gnuplot > /dev/null 2>&1", "w");
  if (pipe == nullptr) return absl::InternalError("cannot start gnuplot");
  std::fwrite(script.data(), 1, script.size(), pipe);
  const int status = pclose(pipe);
  if (status != 0) {
    return absl::InternalError(absl::StrCat("gnuplot failed (exit status ",
                                            WEXITSTATUS(status), ") drawing ",
                                            png_path));
  }
  return absl::OkStatus();
}

}  // namespace dive::tools
