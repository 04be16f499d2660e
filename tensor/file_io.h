// File: tensor/file_io.h
// -----------------------------------------------------------------------------
//
// Writing and reading files in directories other users may share (a run in
// /tmp/lenet), without being turned against their targets:
//
//   * `AtomicFileWriter` writes "<path>.tmp", created with
//     O_CREAT|O_EXCL|O_NOFOLLOW (never through a planted symlink, never into
//     a file someone else made), fsyncs it and renames it over `path`. It
//     refuses a `path` that exists but is not a regular file of this user
//     (a symlink, a device, a directory, another user's file): nothing we
//     write replaces a file we did not create. A stale "<path>.tmp" of this
//     user (a killed write) is removed; anyone else's is an error.
//   * `WriteFully` writes a whole buffer to a descriptor (a pipe, a memfd).
//   * `ReadRegularFile` opens without following a final symlink when asked,
//     accepts regular files only (not /dev/zero, a FIFO or a directory) and
//     checks the size against a limit before allocating.
//
// Example:
//
//   absl::Status s = WriteFileAtomically("/tmp/run/metrics.csv", text);
//   absl::StatusOr<std::string> back = ReadRegularFile(
//       "/tmp/run/metrics.csv", "metrics", 1 << 20, /*follow_symlink=*/false);

#ifndef TENSOR_FILE_IO_H_
#define TENSOR_FILE_IO_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dive {

class AtomicFileWriter {
 public:
  // Checks `path` (absent, or a regular file of this user) and creates its
  // temporary file. Errors name `path` and the reason.
  static absl::StatusOr<AtomicFileWriter> Create(const std::string& path);

  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&&) = delete;
  // Removes the temporary file unless Commit succeeded.
  ~AtomicFileWriter();

  // The temporary file, open for reading and writing (a caller may check
  // what another process wrote into it before committing).
  int fd() const { return fd_; }
  const std::string& temp_path() const { return tmp_; }

  absl::Status Write(absl::string_view bytes);
  // fsyncs the temporary file: what was written survives a crash before
  // `Commit` (for files committed in a fixed order, as a checkpoint pair).
  absl::Status Sync();
  // fsyncs, checks `path` again and renames the temporary file over it, then
  // fsyncs the directory.
  absl::Status Commit();

 private:
  AtomicFileWriter(std::string path, std::string tmp, int fd)
      : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd) {}

  std::string path_, tmp_;
  int fd_ = -1;
};

// Writes all of `bytes` to the open descriptor `fd`, retrying short writes
// and EINTR; `what` names it in errors: "writing <what>: <errno message>".
absl::Status WriteFully(int fd, absl::string_view bytes,
                        absl::string_view what);

// Writes `contents` to `path` with an AtomicFileWriter.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents);

// OK when `path` does not exist or is a regular file owned by this user;
// otherwise FailedPrecondition "refusing to write <path>: <why>".
absl::Status CheckReplaceable(const std::string& path);

// Renames `from`, a regular file of this user, over `to` (absent, or a
// regular file of this user: CheckReplaceable) and fsyncs the directory, so
// that the rename survives a crash. For a file written whole under one name
// and published under another (a checkpoint's weights, train/checkpoint.h).
absl::Status ReplaceFile(const std::string& from, const std::string& to);

// Removes "<path>.tmp" if it is a regular file of this user (left by a
// killed write); true when one was removed.
bool RemoveStaleTemp(const std::string& path);

// The whole of the regular file `path` (`what` names it in errors: "cannot
// open <what> <path>: ..."). A final symlink is followed only when
// `follow_symlink`. Files larger than `max_bytes` are refused before
// anything is allocated.
absl::StatusOr<std::string> ReadRegularFile(const std::string& path,
                                            absl::string_view what,
                                            uint64_t max_bytes,
                                            bool follow_symlink);

// Reopens each of the standard descriptors 0, 1 and 2 that is closed (a
// program started with `>&-`) on /dev/null, so that no file opened later
// takes its number: a run's lock file opened as fd 1 would receive every
// line written to stdout. The binaries call it first thing in main().
void ReopenClosedStandardFds();

// "a symbolic link", "a directory", "a character device", ... for a mode.
const char* FileTypeName(unsigned mode);

}  // namespace dive

#endif  // TENSOR_FILE_IO_H_
