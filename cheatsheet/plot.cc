#include "cheatsheet/plot.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tensor/file_io.h"
#include "train/plot.h"

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
  return WriteFileAtomically(absl::StrCat(path_, "/", name), contents);
}

absl::Status OutputDir::Plot(absl::string_view script,
                             const std::string& png_name, int width,
                             int height) {
  if (!IsPlainName(png_name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Plot: '", png_name, "' is not a plain file name"));
  }
  // "set output" without a name: gnuplot writes the PNG to stdout.
  return train::WritePng(
      absl::StrCat(path_, "/", png_name),
      absl::StrCat("set terminal pngcairo size ", width, ",", height,
                   " font 'sans,10'\nset output\n", script, "\n"),
      /*working_dir_fd=*/fd_);
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
