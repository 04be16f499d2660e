// AtomicFileWriter and ReadRegularFile against what another user can plant
// in a shared directory: symlinks, devices, FIFOs, directories, other
// users' files and stale temporary files, all real, in a temporary
// directory.

#include "tensor/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dive {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string FreshDir(const std::string& name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/", name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string Contents(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(AtomicFileWriterTest, WritesAndReplacesOurOwnRegularFile) {
  const std::string dir = FreshDir("own");
  const std::string path = dir + "/f";
  ASSERT_TRUE(WriteFileAtomically(path, "one").ok());
  EXPECT_EQ(Contents(path), "one");
  ASSERT_TRUE(WriteFileAtomically(path, "two").ok());
  EXPECT_EQ(Contents(path), "two");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(AtomicFileWriterTest, NeverWritesThroughASymlink) {
  const std::string dir = FreshDir("symlink");
  const std::string victim = dir + "/victim", path = dir + "/metrics.csv";
  std::ofstream(victim) << "precious";
  fs::create_symlink(victim, path);
  absl::Status s = WriteFileAtomically(path, "evil");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr(absl::StrCat("refusing to write ", path,
                                     ": it is a symbolic link, not a regular "
                                     "file")));
  EXPECT_EQ(Contents(victim), "precious");
  EXPECT_TRUE(fs::is_symlink(path));

  // A symlink planted as the temporary file is not followed either.
  const std::string other = dir + "/model.safetensors";
  fs::create_symlink(victim, other + ".tmp");
  s = WriteFileAtomically(other, "evil");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr(other + ".tmp exists and is not ours to remove (it is "
                                "a symbolic link"));
  EXPECT_EQ(Contents(victim), "precious");
  EXPECT_FALSE(fs::exists(other));
  // Also when it dangles (O_CREAT would otherwise create its target).
  const std::string third = dir + "/metrics.png";
  fs::create_symlink(dir + "/created", third + ".tmp");
  EXPECT_FALSE(WriteFileAtomically(third, "evil").ok());
  EXPECT_FALSE(fs::exists(dir + "/created"));
}

TEST(AtomicFileWriterTest, RefusesDevicesFifosAndDirectories) {
  const std::string dir = FreshDir("special");
  const std::string fifo = dir + "/fifo", sub = dir + "/sub",
                    dev = dir + "/null";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  fs::create_directories(sub);
  struct Case {
    std::string path;
    const char* why;
  };
  std::vector<Case> cases = {{fifo, "it is a FIFO"},
                             {sub, "it is a directory"}};
  // A real device node where this user may make one (root), else the
  // system's /dev/null itself, which must stay a device.
  if (mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) {
    cases.push_back({dev, "it is a character device"});
  }
  cases.push_back({"/dev/null", "it is a character device"});
  for (const Case& c : cases) {
    const absl::Status s = WriteFileAtomically(c.path, "x");
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << c.path;
    EXPECT_THAT(
        std::string(s.message()),
        HasSubstr(absl::StrCat("refusing to write ", c.path, ": ", c.why)));
  }
  struct stat st;
  ASSERT_EQ(stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_FALSE(fs::exists("/dev/null.tmp"));
}

TEST(AtomicFileWriterTest, RefusesAnotherUsersFileAndItsTemp) {
  const std::string dir = FreshDir("other_user");
  const std::string path = dir + "/f";
  std::ofstream(path) << "theirs";
  // Needs root outside a user namespace (Bazel's sandbox maps no other uid).
  if (chown(path.c_str(), 65534, 65534) != 0) {
    GTEST_SKIP() << "cannot chown to uid 65534 here";
  }
  absl::Status s = WriteFileAtomically(path, "ours");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      std::string(s.message()),
      HasSubstr(absl::StrCat("it belongs to uid 65534, not to this user (uid ",
                             geteuid(), ")")));
  EXPECT_EQ(Contents(path), "theirs");

  const std::string g = dir + "/g";
  std::ofstream(g + ".tmp") << "theirs";
  ASSERT_EQ(chown((g + ".tmp").c_str(), 65534, 65534), 0);
  s = WriteFileAtomically(g, "ours");
  EXPECT_THAT(std::string(s.message()), HasSubstr("not ours to remove"));
  EXPECT_EQ(Contents(g + ".tmp"), "theirs");
}

TEST(AtomicFileWriterTest, StaleTempOfOursIsRemoved) {
  const std::string dir = FreshDir("stale");
  const std::string path = dir + "/f";
  std::ofstream(path + ".tmp") << "half";
  EXPECT_TRUE(RemoveStaleTemp(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_FALSE(RemoveStaleTemp(path));
  std::ofstream(path + ".tmp") << "half";
  ASSERT_TRUE(WriteFileAtomically(path, "whole").ok());
  EXPECT_EQ(Contents(path), "whole");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(AtomicFileWriterTest, UncommittedWriterLeavesNothing) {
  const std::string dir = FreshDir("uncommitted");
  {
    absl::StatusOr<AtomicFileWriter> w = AtomicFileWriter::Create(dir + "/f");
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE(w->Write("x").ok());
  }
  EXPECT_TRUE(fs::is_empty(dir));
}

TEST(ReplaceFileTest, RenamesOurFileOverOursButNeverOverAPlantedOne) {
  const std::string dir = FreshDir("replace");
  const std::string from = dir + "/new", to = dir + "/published";
  std::ofstream(from) << "new";
  std::ofstream(to) << "old";
  ASSERT_TRUE(ReplaceFile(from, to).ok());
  EXPECT_EQ(Contents(to), "new");
  EXPECT_FALSE(fs::exists(from));
  EXPECT_EQ(ReplaceFile(from, to).code(), absl::StatusCode::kNotFound);

  std::ofstream(from) << "newer";
  fs::remove(to);
  fs::create_directory_symlink("/etc", to);
  const absl::Status s = ReplaceFile(from, to);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr(absl::StrCat("refusing to write ", to)));
  EXPECT_EQ(Contents(from), "newer");
}

TEST(ReadRegularFileTest, ChecksTypeSizeAndSymlinks) {
  const std::string dir = FreshDir("read");
  const std::string path = dir + "/f", link = dir + "/link";
  std::ofstream(path) << "hello";
  fs::create_symlink(path, link);
  absl::StatusOr<std::string> r = ReadRegularFile(path, "file", 100, false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "hello");
  r = ReadRegularFile(link, "file", 100, true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "hello");
  r = ReadRegularFile(link, "metrics", 100, false);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr(absl::StrCat("cannot open metrics ", link,
                                     ": it is a symbolic link")));
  r = ReadRegularFile(path, "checkpoint", 4, false);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr(absl::StrCat("checkpoint ", path,
                                     " is 5 bytes, more than the limit of 4")));
  r = ReadRegularFile("/dev/zero", "checkpoint", 100, true);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("checkpoint /dev/zero is a character device, not a "
                        "regular file"));
  r = ReadRegularFile(dir, "checkpoint", 100, true);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("is a directory, not a regular file"));
  const std::string fifo = dir + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  r = ReadRegularFile(fifo, "checkpoint", 100, true);  // must not block
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("is a FIFO"));
  r = ReadRegularFile(dir + "/none", "checkpoint", 100, true);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
}

// A process started with stdin and stdout closed gets them back on
// /dev/null, so the next file it opens does not become its stdout.
TEST(ReopenClosedStandardFdsTest, ClosedStdoutIsDevNullAndFilesGetNewNumbers) {
  const std::string path =
      absl::StrCat(::testing::TempDir(), "/reopen_std_fds_lock");
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // only async-signal-safe calls and _exit from here
    close(0);
    close(1);
    ReopenClosedStandardFds();
    struct stat out, null;
    if (fstat(1, &out) != 0 || stat("/dev/null", &null) != 0) _exit(2);
    if (out.st_rdev != null.st_rdev || !S_ISCHR(out.st_mode)) _exit(3);
    if (fcntl(0, F_GETFD) == -1) _exit(4);
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    _exit(fd > 2 ? 0 : 5);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "2: fstat failed, 3: fd 1 is not /dev/null, 4: fd 0 still closed, "
         "5: a new file took a standard number";
}

}  // namespace
}  // namespace dive
