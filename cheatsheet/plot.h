// File: cheatsheet/plot.h
// -----------------------------------------------------------------------------
//
// Writes the cheat sheet's figures: data files and a PNG drawn by gnuplot,
// in an output directory named by the user (`--out`), without ever letting
// a user-provided string reach gnuplot or a shell. The writing and the
// drawing are the trainers' own (one implementation of each):
//
//   * The directory name is validated (`OutputDir::Open`): not empty, no
//     control characters, not a symbolic link; it is created if missing.
//   * Every file is written under a fixed name chosen by the program, with
//     tensor/file_io.h's WriteFileAtomically: aside under "<name>.tmp"
//     (O_CREAT|O_EXCL|O_NOFOLLOW), then renamed over the final name. A name
//     that is a symbolic link, or any file but a regular file of this user,
//     is refused, never followed or replaced.
//   * gnuplot runs through train/plot.h's WritePng (posix_spawn, no shell),
//     with its working directory set to the output directory, its script (a
//     fixed string of the program's, naming only the fixed data files) on
//     stdin, and the PNG written from its stdout: gnuplot itself opens no
//     output file.
//
// Example:
//
//   absl::StatusOr<OutputDir> dir = OutputDir::Open("/tmp/cheatsheet");
//   if (!dir.ok()) return dir.status();
//   absl::Status s = dir->WriteFile("curve.dat", "0 1\n1 2\n");
//   if (s.ok()) s = dir->Plot("plot 'curve.dat' with lines\n", "curve.png");

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
  // Writes `contents` to `name` in the directory (WriteFileAtomically).
  // `name` must be a plain file name of the program's: [A-Za-z0-9_.-], not
  // starting with '.'; InvalidArgument else.
  absl::Status WriteFile(const std::string& name, absl::string_view contents);

  // Plot()
  //
  // Runs gnuplot in the directory with "set terminal pngcairo ...", then
  // `script` on stdin, and writes what it prints (the PNG) to `png_name`
  // (train::WritePng). Unavailable when gnuplot cannot be started, Internal
  // when it fails or prints no PNG (`png_name` is then left as it was).
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
