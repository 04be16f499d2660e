#include "cheatsheet/plot.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dive::cheatsheet {
namespace {

constexpr size_t kMaxPathBytes = 4096;

absl::Status ErrnoError(absl::string_view what, const std::string& path,
                        int err) {
  return absl::InternalError(
      absl::StrCat(what, " '", path, "': ", std::strerror(err)));
}

bool IsPlainName(const std::string& name) {
  if (name.empty() || name[0] == '.' || name.size() > 128) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Writes all of `data` to `fd`, retrying on EINTR and short writes.
bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Creates every missing directory of `path` (like mkdir -p).
absl::Status MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i != path.size() && path[i] != '/') continue;
    const std::string prefix = path.substr(0, i);
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoError("cannot create directory", prefix, errno);
    }
  }
  return absl::OkStatus();
}

std::atomic<int> temp_counter{0};

}  // namespace

absl::Status ValidateOutPath(absl::string_view path) {
  if (path.empty()) {
    return absl::InvalidArgumentError("--out: the directory name is empty");
  }
  if (path.size() > kMaxPathBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--out: the directory name is longer than ",
                     kMaxPathBytes, " bytes"));
  }
  for (size_t i = 0; i < path.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(path[i]);
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--out: control character 0x", absl::Hex(c), " at byte ", i,
          " of the directory name"));
    }
  }
  return absl::OkStatus();
}

std::string ResolveOutPath(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (cwd == nullptr || cwd[0] == '\0') return path;
  return absl::StrCat(cwd, "/", path);
}

absl::StatusOr<OutputDir> OutputDir::Open(const std::string& path) {
  if (absl::Status s = ValidateOutPath(path); !s.ok()) return s;
  if (absl::Status s = MakeDirs(path); !s.ok()) return s;
  const int fd = open(path.c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP || errno == ENOTDIR) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--out: '", path,
          "' is a symbolic link or not a directory; refusing to write there"));
    }
    return ErrnoError("cannot open directory", path, errno);
  }
  return OutputDir(path, fd);
}

OutputDir::OutputDir(OutputDir&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

OutputDir& OutputDir::operator=(OutputDir&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

OutputDir::~OutputDir() {
  if (fd_ >= 0) close(fd_);
}

absl::Status OutputDir::WriteFile(const std::string& name,
                                  absl::string_view contents) {
  if (!IsPlainName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("WriteFile: '", name, "' is not a plain file name"));
  }
  // A fresh temporary name: O_EXCL fails on anything already there,
  // symbolic links included, so another name is tried.
  std::string temp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    temp = absl::StrCat(".", name, ".tmp.", getpid(), ".",
                        temp_counter.fetch_add(1));
    fd = openat(fd_, temp.c_str(),
                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) {
      return ErrnoError("cannot create", path_ + "/" + temp, errno);
    }
  }
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("no free temporary name for '", name, "' in ", path_));
  }
  const bool written = WriteAll(fd, contents) && fsync(fd) == 0;
  const int write_errno = errno;
  if (close(fd) != 0 || !written) {
    unlinkat(fd_, temp.c_str(), 0);
    return ErrnoError("cannot write", path_ + "/" + temp,
                      written ? errno : write_errno);
  }
  if (renameat(fd_, temp.c_str(), fd_, name.c_str()) != 0) {
    const int err = errno;
    unlinkat(fd_, temp.c_str(), 0);
    return ErrnoError("cannot rename onto", path_ + "/" + name, err);
  }
  return absl::OkStatus();
}

absl::Status OutputDir::Plot(absl::string_view script,
                             const std::string& png_name, int width,
                             int height) {
  if (!IsPlainName(png_name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Plot: '", png_name, "' is not a plain file name"));
  }
  // "set output" without a name: gnuplot writes the PNG to stdout.
  const std::string full_script =
      absl::StrCat("set terminal pngcairo size ", width, ",", height,
                   " font 'sans,10'\nset output\n", script, "\n");

  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe", path_, errno);
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    close(in_pipe[0]);
    close(in_pipe[1]);
    return ErrnoError("pipe", path_, errno);
  }
  // Closed by a successful exec; otherwise carries the child's errno.
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) {
      close(fd);
    }
    return ErrnoError("pipe", path_, errno);
  }
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1],
                   err_pipe[0], err_pipe[1]}) {
      close(fd);
    }
    return ErrnoError("fork for gnuplot in", path_, err);
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    char arg0[] = "gnuplot";
    char* const argv[] = {arg0, nullptr};
    int err = 0;
    // dup2 onto itself (a pipe end that already is fd 0 or 1, when the
    // parent's stdin or stdout was closed) keeps O_CLOEXEC: clear it.
    const auto redirect = [](int from, int to) {
      return from == to ? fcntl(to, F_SETFD, 0) : dup2(from, to);
    };
    if (redirect(in_pipe[0], STDIN_FILENO) < 0 ||
        redirect(out_pipe[1], STDOUT_FILENO) < 0 || fchdir(fd_) != 0) {
      err = errno;
    } else {
      execvp("gnuplot", argv);
      err = errno;
    }
    ssize_t ignored = write(err_pipe[1], &err, sizeof(err));
    (void)ignored;
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);

  int child_errno = 0;
  ssize_t n;
  do {
    n = read(err_pipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  close(err_pipe[0]);
  const bool exec_failed = n == static_cast<ssize_t>(sizeof(child_errno));

  // The script is a few kilobytes, far below a pipe's buffer, so writing it
  // all before reading cannot deadlock. A gnuplot that died early must not
  // kill us with SIGPIPE.
  struct sigaction ignore = {}, previous = {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &previous);
  if (!exec_failed) WriteAll(in_pipe[1], full_script);
  close(in_pipe[1]);
  std::string png;
  char buffer[65536];
  while (true) {
    const ssize_t got = read(out_pipe[0], buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    png.append(buffer, static_cast<size_t>(got));
  }
  close(out_pipe[0]);
  sigaction(SIGPIPE, &previous, nullptr);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (exec_failed) {
    return absl::UnavailableError(absl::StrCat(
        "cannot run gnuplot (", std::strerror(child_errno),
        "); install Debian's gnuplot-nox to get the PNG"));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(
        "gnuplot failed (status ", status, ") drawing ", png_name));
  }
  if (png.size() < 8 || png.compare(0, 4, "\x89PNG") != 0) {
    return absl::InternalError(
        absl::StrCat("gnuplot printed no PNG for ", png_name));
  }
  return WriteFile(png_name, png);
}

absl::StatusOr<std::string> WriteFigure(const std::string& out_flag,
                                        const std::string& data_name,
                                        absl::string_view data,
                                        absl::string_view script,
                                        const std::string& png_name, int width,
                                        int height) {
  absl::StatusOr<OutputDir> dir = OutputDir::Open(ResolveOutPath(out_flag));
  if (!dir.ok()) return dir.status();
  if (absl::Status s = dir->WriteFile(data_name, data); !s.ok()) return s;
  if (absl::Status s = dir->Plot(script, png_name, width, height); !s.ok()) {
    return s;
  }
  return absl::StrCat(dir->path(), "/", png_name);
}

}  // namespace dive::cheatsheet
