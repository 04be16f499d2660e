#include "tensor/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dive {
namespace {

std::string Errno(int err) { return std::strerror(err); }

absl::Status Refuse(const std::string& path, absl::string_view why) {
  return absl::FailedPreconditionError(
      absl::StrCat("refusing to write ", path, ": ", why));
}

// Why the existing file with status `st` may not be replaced, or "".
std::string NotReplaceable(const struct stat& st) {
  if (!S_ISREG(st.st_mode)) {
    return absl::StrCat("it is ", FileTypeName(st.st_mode),
                        ", not a regular file");
  }
  if (st.st_uid != geteuid()) {
    return absl::StrCat("it belongs to uid ", st.st_uid,
                        ", not to this user (uid ", geteuid(), ")");
  }
  return "";
}

std::string Directory(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Makes a rename into the directory of `path` durable.
void SyncDirectoryOf(const std::string& path) {
  const int dfd =
      ::open(Directory(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace

void ReopenClosedStandardFds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    // open() returns the lowest free number: this one, as 0 .. fd - 1 are
    // open by now. Without /dev/null there is nothing better to do.
    const int opened = ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (opened != fd && opened >= 0) ::close(opened);
  }
}

const char* FileTypeName(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "a regular file";
    case S_IFDIR:
      return "a directory";
    case S_IFLNK:
      return "a symbolic link";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFIFO:
      return "a FIFO";
    case S_IFSOCK:
      return "a socket";
  }
  return "not a regular file";
}

absl::Status CheckReplaceable(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return Refuse(path, Errno(errno));
  }
  const std::string why = NotReplaceable(st);
  return why.empty() ? absl::OkStatus() : Refuse(path, why);
}

absl::Status ReplaceFile(const std::string& from, const std::string& to) {
  struct stat st;
  if (::lstat(from.c_str(), &st) != 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot rename ", from, ": ", Errno(errno)));
  }
  if (const std::string why = NotReplaceable(st); !why.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("refusing to rename ", from, ": ", why));
  }
  if (absl::Status s = CheckReplaceable(to); !s.ok()) return s;
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("renaming ", from, " to ", to, ": ", Errno(errno)));
  }
  SyncDirectoryOf(to);
  return absl::OkStatus();
}

bool RemoveStaleTemp(const std::string& path) {
  const std::string tmp = path + ".tmp";
  struct stat st;
  if (::lstat(tmp.c_str(), &st) != 0 || !NotReplaceable(st).empty()) {
    return false;
  }
  return ::unlink(tmp.c_str()) == 0;
}

absl::StatusOr<AtomicFileWriter> AtomicFileWriter::Create(
    const std::string& path) {
  if (absl::Status s = CheckReplaceable(path); !s.ok()) return s;
  const std::string tmp = path + ".tmp";
  RemoveStaleTemp(path);
  const int fd = ::open(
      tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    struct stat st;
    if (err == EEXIST && ::lstat(tmp.c_str(), &st) == 0) {
      return Refuse(path,
                    absl::StrCat(tmp, " exists and is not ours to remove (",
                                 NotReplaceable(st), ")"));
    }
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", tmp, ": ", Errno(err)));
  }
  return AtomicFileWriter(path, tmp, fd);
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      tmp_(std::move(other.tmp_)),
      fd_(std::exchange(other.fd_, -1)) {}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

absl::Status AtomicFileWriter::Write(absl::string_view bytes) {
  return WriteFully(fd_, bytes, tmp_);
}

absl::Status AtomicFileWriter::Sync() {
  if (::fsync(fd_) != 0) {
    return absl::InternalError(
        absl::StrCat("fsync ", tmp_, ": ", Errno(errno)));
  }
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Commit() {
  if (absl::Status s = Sync(); !s.ok()) return s;
  // Checked again: the target may have been replaced meanwhile.
  if (absl::Status s = CheckReplaceable(path_); !s.ok()) return s;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("renaming ", tmp_, " to ", path_, ": ", Errno(errno)));
  }
  ::close(fd_);
  fd_ = -1;
  SyncDirectoryOf(path_);
  return absl::OkStatus();
}

absl::Status WriteFully(int fd, absl::string_view bytes,
                        absl::string_view what) {
  while (!bytes.empty()) {
    const ssize_t w = ::write(fd, bytes.data(), bytes.size());
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      return absl::InternalError(
          absl::StrCat("writing ", what, ": ", Errno(w < 0 ? errno : EIO)));
    }
    bytes.remove_prefix(static_cast<size_t>(w));
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents) {
  absl::StatusOr<AtomicFileWriter> w = AtomicFileWriter::Create(path);
  if (!w.ok()) return w.status();
  if (absl::Status s = w->Write(contents); !s.ok()) return s;
  return w->Commit();
}

absl::StatusOr<std::string> ReadRegularFile(const std::string& path,
                                            absl::string_view what,
                                            uint64_t max_bytes,
                                            bool follow_symlink) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK |
                                          (follow_symlink ? 0 : O_NOFOLLOW));
  if (fd < 0) {
    const int err = errno;
    const std::string message =
        absl::StrCat("cannot open ", what, " ", path, ": ",
                     err == ELOOP ? "it is a symbolic link" : Errno(err));
    if (err == ENOENT) return absl::NotFoundError(message);
    if (err == EACCES) return absl::PermissionDeniedError(message);
    return absl::FailedPreconditionError(message);
  }
  struct stat st;
  absl::Status status;
  std::string bytes;
  if (::fstat(fd, &st) != 0) {
    status = absl::InternalError(
        absl::StrCat("cannot stat ", what, " ", path, ": ", Errno(errno)));
  } else if (!S_ISREG(st.st_mode)) {
    status = absl::FailedPreconditionError(
        absl::StrCat(what, " ", path, " is ", FileTypeName(st.st_mode),
                     ", not a regular file"));
  } else if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    status = absl::ResourceExhaustedError(
        absl::StrCat(what, " ", path, " is ", st.st_size,
                     " bytes, more than the limit of ", max_bytes, " bytes"));
  } else {
    // The limit bounds the request, but memory may still run out.
    try {
      bytes.resize(static_cast<size_t>(st.st_size));
    } catch (const std::bad_alloc&) {
      status = absl::ResourceExhaustedError(
          absl::StrCat("out of memory reading ", what, " ", path, " (",
                       st.st_size, " bytes)"));
    }
    size_t got = 0;
    while (status.ok() && got < bytes.size()) {
      const ssize_t r = ::read(fd, bytes.data() + got, bytes.size() - got);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        status = absl::DataLossError(
            absl::StrCat("reading ", what, " ", path, ": ", Errno(errno)));
      } else if (r == 0) {
        bytes.resize(got);  // shrank while reading
      } else {
        got += static_cast<size_t>(r);
      }
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  return bytes;
}

}  // namespace dive
