#include "train/plot.h"

#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "tensor/file_io.h"
#include "tensor/text.h"

extern char** environ;

namespace dive::train {
namespace {

// The last line that `fd` (gnuplot's standard error) holds, or "".
std::string LastLine(int fd) {
  char tail[1024];
  const off_t size = ::lseek(fd, 0, SEEK_END);
  const off_t from =
      std::max<off_t>(size - static_cast<off_t>(sizeof(tail)), 0);
  const ssize_t got = size > 0 ? ::pread(fd, tail, size - from, from) : 0;
  absl::string_view text(tail, got > 0 ? static_cast<size_t>(got) : 0);
  text = absl::StripAsciiWhitespace(text);
  const size_t newline = text.find_last_of('\n');
  if (newline != absl::string_view::npos) text.remove_prefix(newline + 1);
  return Printable(absl::StripAsciiWhitespace(text), 200);
}

}  // namespace

std::string GnuplotQuote(absl::string_view s) {
  std::string out = "'";
  for (char c : s) {
    const bool safe = absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                      std::strchr(" _.,:()+/-", c) != nullptr;
    out += safe && c != '\0' ? c : '?';
  }
  return out + "'";
}

absl::Status RunGnuplot(absl::string_view script, int out_fd,
                        int working_dir_fd) {
  // The script goes in through an anonymous in-memory file as gnuplot's
  // stdin: no pipe (no SIGPIPE if gnuplot dies, no deadlock), no temporary
  // file. Its stderr goes to another, read back for the error message.
  const int script_fd = memfd_create("gnuplot-script", MFD_CLOEXEC);
  const int err_fd = memfd_create("gnuplot-stderr", MFD_CLOEXEC);
  const auto close_both = [&] {
    if (script_fd >= 0) ::close(script_fd);
    if (err_fd >= 0) ::close(err_fd);
  };
  if (script_fd < 0 || err_fd < 0) {
    const int err = errno;
    close_both();
    return absl::InternalError(absl::StrCat(
        "cannot start gnuplot: memfd_create: ", std::strerror(err)));
  }
  if (absl::Status s = WriteFully(script_fd, script, "gnuplot's script");
      !s.ok() || ::lseek(script_fd, 0, SEEK_SET) != 0) {
    close_both();
    return absl::InternalError("cannot start gnuplot: writing its script");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (working_dir_fd >= 0) {
    posix_spawn_file_actions_addfchdir_np(&actions, working_dir_fd);
  }
  posix_spawn_file_actions_adddup2(&actions, script_fd, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_fd, STDERR_FILENO);
  char arg0[] = "gnuplot";
  char* argv[] = {arg0, nullptr};
  pid_t pid = -1;
  const int err =
      posix_spawnp(&pid, "gnuplot", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(script_fd);
  absl::Status status;
  int wait_status = 0;
  if (err == ENOENT) {
    status = absl::UnavailableError(
        "gnuplot is not installed (tools/setup.sh installs gnuplot-nox)");
  } else if (err != 0) {
    status = absl::InternalError(
        absl::StrCat("cannot start gnuplot: ", std::strerror(err)));
  } else {
    while (::waitpid(pid, &wait_status, 0) < 0 && status.ok()) {
      if (errno != EINTR) {
        status = absl::InternalError(
            absl::StrCat("waiting for gnuplot: ", std::strerror(errno)));
      }
    }
    if (status.ok() &&
        (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0)) {
      status = absl::InternalError(absl::StrCat(
          "gnuplot failed (",
          WIFEXITED(wait_status)
              ? absl::StrCat("exit status ", WEXITSTATUS(wait_status))
              : absl::StrCat("signal ", WTERMSIG(wait_status)),
          "): ", LastLine(err_fd)));
    }
  }
  ::close(err_fd);
  return status;
}

absl::Status WritePng(const std::string& png_path, absl::string_view script,
                      int working_dir_fd) {
  absl::StatusOr<AtomicFileWriter> out = AtomicFileWriter::Create(png_path);
  if (!out.ok()) return out.status();
  if (absl::Status s = RunGnuplot(script, out->fd(), working_dir_fd);
      !s.ok()) {
    return s;
  }
  char magic[4] = {};
  if (::pread(out->fd(), magic, sizeof(magic), 0) != sizeof(magic) ||
      std::memcmp(magic, "\x89PNG", sizeof(magic)) != 0) {
    return absl::InternalError(
        absl::StrCat("gnuplot printed no PNG for ", png_path));
  }
  return out->Commit();
}

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
      "set title ", GnuplotQuote(title), "\n",
      "set xlabel 'epoch'\n"
      "set grid\n"
      "set key outside bottom center horizontal\n"
      "set yrange [0:*]\n"
      "plot $metrics using 1:2 with linespoints lw 2 title 'train loss', \\\n"
      "  $metrics using 1:3 with linespoints lw 2 dt 2 title 'train acc', \\\n"
      "  $metrics using 1:4 with linespoints lw 2 dt 4 title 'test acc'\n");
}

}  // namespace dive::train
