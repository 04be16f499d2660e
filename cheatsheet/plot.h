// File: cheatsheet/plot.h
// -----------------------------------------------------------------------------
//
// Writes the cheat sheet's figures: data files and a PNG drawn by gnuplot,
// in an output directory named by the user (`--out`), without ever letting
// a user-provided string reach gnuplot or a shell.
//
//   * The directory name is validated (`OpenOutputDir`): not empty, no
//     control characters, not a symbolic link; it is created if missing.
//   * Every file is written under a fixed name chosen by the program. It is
//     first created under a fresh temporary name with
//     O_CREAT|O_EXCL|O_NOFOLLOW (so an existing file or symbolic link is
//     never opened), then renamed over the final name (rename replaces a
//     symbolic link, it does not follow it).
//   * gnuplot runs through fork/execvp (no shell, no popen), with its working
//     directory set to the output directory, its script (a fixed string of
//     the program's, naming only the fixed data files) on stdin, and the PNG
//     read back from its stdout: gnuplot itself opens no output file.
//
// Example:
//
//   absl::StatusOr<OutputDir> dir = OutputDir::Open("/tmp/cheatsheet");
//   if (!dir.ok()) return dir.status();
//   absl::Status s = dir->WriteFile("curve.dat", "0 1\n1 2\n");
//   if (s.ok()) s = dir->Plot("plot 'curve.dat' with lines\n", "curve.png");
//
// This helper is kept separate from train/plot.cc on purpose (that one draws
// the trainer's metrics and is being rewritten independently).

#ifndef CHEATSHEET_PLOT_H_
#define CHEATSHEET_PLOT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dive::cheatsheet {

// ValidateOutPath()
//
// InvalidArgument unless `path` is non-empty, at most 4096 bytes and free of
// control characters (bytes below 0x20 and 0x7f).
absl::Status ValidateOutPath(absl::string_view path);

// ResolveOutPath()
//
// `path` made absolute against the directory `bazel run` was started from
// (BUILD_WORKING_DIRECTORY), when that is set and `path` is relative;
// otherwise `path` unchanged.
std::string ResolveOutPath(const std::string& path);

class OutputDir {
 public:
  // Open()
  //
  // Validates `path`, creates it (and its parents) if missing and opens it,
  // refusing a final component that is a symbolic link. InvalidArgument for
  // a bad path, FailedPrecondition for a symbolic link or a non-directory,
  // Internal for other system errors (with errno's message).
  static absl::StatusOr<OutputDir> Open(const std::string& path);

  OutputDir(OutputDir&& other) noexcept;
  OutputDir& operator=(OutputDir&& other) noexcept;
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;
  ~OutputDir();

  const std::string& path() const { return path_; }

  // WriteFile()
  //
  // Writes `contents` to `name` in the directory (temporary name, O_EXCL |
  // O_NOFOLLOW, fsync, rename). `name` must be a plain file name of the
  // program's: [A-Za-z0-9_.-], not starting with '.'; InvalidArgument else.
  absl::Status WriteFile(const std::string& name, absl::string_view contents);

  // Plot()
  //
  // Runs gnuplot in the directory with "set terminal pngcairo ...", then
  // `script` on stdin, and writes what it prints (the PNG) to `png_name`
  // with `WriteFile`. Unavailable when gnuplot cannot be started, Internal
  // when it fails or prints no PNG.
  absl::Status Plot(absl::string_view script, const std::string& png_name,
                    int width = 800, int height = 600);

 private:
  OutputDir(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  std::string path_;
  int fd_ = -1;
};

// WriteFigure()
//
// What a section's binary does with its `--out` flag: resolves it
// (`ResolveOutPath`), opens it (`OutputDir::Open`), writes `data` to
// `data_name` and plots `script` (which reads `data_name`) to `png_name`.
// Returns the PNG's path.
absl::StatusOr<std::string> WriteFigure(const std::string& out_flag,
                                        const std::string& data_name,
                                        absl::string_view data,
                                        absl::string_view script,
                                        const std::string& png_name,
                                        int width = 800, int height = 600);

}  // namespace dive::cheatsheet

#endif  // CHEATSHEET_PLOT_H_
