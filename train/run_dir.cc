#include "train/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "tensor/file_io.h"
#include "train/checkpoint.h"

namespace dive::train {
namespace {

// Creates `dir` if needed and checks that files can be created in it and
// that it (and a symbolic link standing for it) is this user's.
absl::Status Prepare(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || access(dir.c_str(), W_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--out=", dir, ": cannot create or write the directory",
        ec ? absl::StrCat(" (", ec.message(), ")") : ""));
  }
  // Writable in fact, not only by its mode bits (root, /proc): a file can
  // be created there.
  const std::string probe = dir + "/.write-test-XXXXXX";
  std::vector<char> name(probe.begin(), probe.end());
  name.push_back('\0');
  const int fd = mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("--out=", dir, ": cannot create files there (",
                     std::strerror(errno), ")"));
  }
  close(fd);
  unlink(name.data());
  // In a shared place (/tmp/lenet) the directory, or a symlink standing
  // for it, may be someone else's: whoever owns it can plant files in it.
  struct stat link, target;
  if (lstat(dir.c_str(), &link) != 0 || stat(dir.c_str(), &target) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("--out=", dir, ": ", std::strerror(errno)));
  }
  for (const struct stat* st : {&link, &target}) {
    if (st->st_uid != geteuid()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--out=", dir, ": ",
          st == &link && S_ISLNK(link.st_mode) ? "the symbolic link"
                                               : "the directory",
          " belongs to uid ", st->st_uid, ", not to this user (uid ",
          geteuid(), "); choose a directory of your own"));
    }
  }
  return absl::OkStatus();
}

// An exclusive flock on "<dir>/.lock", with the holder's pid in the file;
// released when the process ends, however: the locked descriptor.
absl::StatusOr<int> Lock(const std::string& dir) {
  const std::string path = dir + "/.lock";
  const int fd =
      ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--out=", dir, ": cannot create ", path, ": ",
        errno == ELOOP ? "it is a symbolic link" : std::strerror(errno)));
  }
  struct stat st;
  std::string problem;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_uid != geteuid()) {
    problem = absl::StrCat(path, " is not a regular file of this user");
  } else if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {};
    const ssize_t n = ::pread(fd, pid, sizeof(pid) - 1, 0);
    problem = absl::StrCat(
        "another run (pid ", n > 0 ? absl::StripAsciiWhitespace(pid) : "unknown",
        ") is using this directory; wait for it to end or choose another "
        "--out");
  }
  if (!problem.empty()) {
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("--out=", dir, ": ", problem));
  }
  const std::string me = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) !=
                                     static_cast<ssize_t>(me.size())) {
    LOG(WARNING) << "cannot write the pid into " << path;
  }
  return fd;
}

// The files a run writes in its directory (each also as "<name>.tmp").
constexpr const char* kRunFiles[] = {kWeightsFile, kPendingWeightsFile,
                                     kTrainStateFile, "metrics.csv",
                                     "metrics.png"};

// Checks that every file the run writes may be replaced (no symlink,
// device or other user's file planted in their place). Changes nothing.
absl::Status CheckRunFiles(const std::string& dir) {
  for (const char* name : kRunFiles) {
    const std::string path = absl::StrCat(dir, "/", name);
    for (const std::string& p : {path, path + ".tmp"}) {
      if (absl::Status s = CheckReplaceable(p); !s.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("--out=", dir, ": ", s.message()));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<RunDir>> RunDir::Claim(const std::string& path) {
  if (absl::Status s = Prepare(path); !s.ok()) return s;
  absl::StatusOr<int> fd = Lock(path);
  if (!fd.ok()) return fd.status();
  std::unique_ptr<RunDir> dir(new RunDir(path, *fd));
  if (absl::Status s = CheckRunFiles(path); !s.ok()) return s;
  return dir;
}

RunDir::RunDir(std::string path, int lock_fd)
    : path_(std::move(path)), lock_fd_(lock_fd) {}

RunDir::~RunDir() { ::close(lock_fd_); }

absl::Status RunDir::RefuseAnExistingRun() const {
  std::vector<std::string> found;
  for (const char* name : {kWeightsFile, kTrainStateFile, "metrics.csv"}) {
    struct stat st;
    if (lstat(absl::StrCat(path_, "/", name).c_str(), &st) == 0) {
      found.push_back(name);
    }
  }
  if (found.empty()) return absl::OkStatus();
  const std::string checkpoint = DescribeCheckpoint(path_);
  return absl::FailedPreconditionError(absl::StrCat(
      "--out=", path_, " already holds a run (", absl::StrJoin(found, ", "),
      checkpoint.empty() ? "" : absl::StrCat("; ", checkpoint),
      "); pass --resume to continue it or --overwrite to replace it"));
}

void RunDir::RemoveLeftovers() const {
  for (const char* name : kRunFiles) {
    const std::string path = absl::StrCat(path_, "/", name);
    if (RemoveStaleTemp(path)) {
      LOG(INFO) << "removed " << path << ".tmp, left by a run that was killed";
    }
  }
  // CheckRunFiles found it a regular file of this user, if there.
  const std::string pending = absl::StrCat(path_, "/", kPendingWeightsFile);
  if (::unlink(pending.c_str()) == 0) {
    LOG(INFO) << "removed " << pending << ", the weights of an unfinished save";
  }
}

}  // namespace dive::train
