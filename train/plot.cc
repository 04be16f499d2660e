#include "train/plot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace dive::train {
namespace {

// `s` with every character outside [A-Za-z0-9 _.,:()+/-] replaced by '?', in
// single quotes: nothing in it can end the literal or be expanded by gnuplot
// (no quotes, backquotes, '@', '$', '\\' or control characters).
std::string SafeLiteral(absl::string_view s) {
  std::string out = "'";
  for (char c : s) {
    const bool safe = absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                      std::strchr(" _.,:()+/-", c) != nullptr;
    out += safe && c != '\0' ? c : '?';
  }
  return out + "'";
}

// Writes all of `s` to `fd`.
bool WriteAll(int fd, absl::string_view s) {
  while (!s.empty()) {
    const ssize_t w = ::write(fd, s.data(), s.size());
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    s.remove_prefix(static_cast<size_t>(w));
  }
  return true;
}

}  // namespace

std::string PlotScript(absl::string_view csv, const std::string& title) {
  // The data as an inline datablock of numbers formatted here.
  std::string data;
  for (absl::string_view line : absl::StrSplit(csv, '\n')) {
    const std::vector<absl::string_view> f = absl::StrSplit(line, ',');
    double v[4];
    if (f.size() < 4) continue;
    bool ok = true;
    for (int i = 0; i < 4; ++i) ok = ok && absl::SimpleAtod(f[i], &v[i]);
    if (!ok) continue;  // the header, or a damaged row
    absl::StrAppend(&data, absl::StrFormat("%.9g %.9g %.9g %.9g\n", v[0], v[1],
                                           v[2], v[3]));
  }
  return absl::StrCat(
      "set terminal pngcairo size 800,500 font 'sans,11'\n",
      "$metrics << EOD\n", data, "EOD\n",  //
      "set title ", SafeLiteral(title), "\n",
      "set xlabel 'epoch'\n"
      "set grid\n"
      "set key outside bottom center horizontal\n"
      "set yrange [0:*]\n"
      "plot $metrics using 1:2 with linespoints lw 2 title 'train loss', \\\n"
      "  $metrics using 1:3 with linespoints lw 2 dt 2 title 'train acc', \\\n"
      "  $metrics using 1:4 with linespoints lw 2 dt 4 title 'test acc'\n");
}

absl::Status PlotMetrics(absl::string_view csv, int png_fd,
                         const std::string& title) {
  // The script goes in through an anonymous in-memory file as gnuplot's
  // stdin: no pipe (no SIGPIPE if gnuplot dies), no temporary file.
  const int script_fd = memfd_create("gnuplot-script", MFD_CLOEXEC);
  if (script_fd < 0) {
    return absl::InternalError(absl::StrCat(
        "cannot start gnuplot: memfd_create: ", std::strerror(errno)));
  }
  if (!WriteAll(script_fd, PlotScript(csv, title)) ||
      ::lseek(script_fd, 0, SEEK_SET) != 0) {
    ::close(script_fd);
    return absl::InternalError("cannot start gnuplot: writing its script");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, script_fd, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, png_fd, STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null",
                                   O_WRONLY, 0);
  char arg0[] = "gnuplot";
  char* argv[] = {arg0, nullptr};
  pid_t pid = -1;
  const int err =
      posix_spawnp(&pid, "gnuplot", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(script_fd);
  if (err == ENOENT) {
    return absl::UnavailableError("gnuplot is not installed (tools/setup.sh)");
  }
  if (err != 0) {
    return absl::InternalError(
        absl::StrCat("cannot start gnuplot: ", std::strerror(err)));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return absl::InternalError(
          absl::StrCat("waiting for gnuplot: ", std::strerror(errno)));
    }
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(
        "gnuplot failed (",
        WIFEXITED(status) ? absl::StrCat("exit status ", WEXITSTATUS(status))
                          : absl::StrCat("signal ", WTERMSIG(status)),
        ")"));
  }
  return absl::OkStatus();
}

}  // namespace dive::train
