// RunDir: preparing, locking and checking a run's directory, and what it
// refuses, each without changing anything in the directory.

#include "train/run_dir.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "train/checkpoint.h"

namespace dive::train {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::string FreshDir(const std::string& name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/", name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(RunDirTest, ClaimCreatesTheDirectory) {
  const std::string dir = FreshDir("claim") + "/a/b";
  absl::StatusOr<std::unique_ptr<RunDir>> claimed = RunDir::Claim(dir);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  EXPECT_TRUE(fs::is_directory(dir));
  EXPECT_EQ((*claimed)->path(), dir);
  // Only the lock file, with this process's pid.
  EXPECT_EQ(Read(dir + "/.lock"), absl::StrCat(getpid(), "\n"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), {}), 1);
}

TEST(RunDirTest, RefusesWhatCannotHoldARun) {
  const std::string file = FreshDir("refuse") + "/regular_file";
  Write(file, "x");
  struct Case {
    std::string dir;
    std::string message;
  };
  const Case cases[] = {
      {"/proc/x", "--out=/proc/x: cannot create or write"},
      // Writable by its mode bits for root, but no file can be made there.
      {"/proc", "--out=/proc: cannot create files there ("},
      {file + "/out", "Not a directory"},
      {"/dev/null", "--out=/dev/null"},
  };
  for (const Case& c : cases) {
    const absl::Status s = RunDir::Claim(c.dir).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << c.dir;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.message)) << c.dir;
  }
  EXPECT_EQ(Read(file), "x");
}

TEST(RunDirTest, OneRunAtATime) {
  const std::string dir = FreshDir("locked");
  absl::StatusOr<std::unique_ptr<RunDir>> first = RunDir::Claim(dir);
  ASSERT_TRUE(first.ok()) << first.status();
  const absl::Status second = RunDir::Claim(dir).status();
  EXPECT_EQ(second.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.message()),
              HasSubstr(absl::StrCat("another run (pid ", getpid(),
                                     ") is using this directory")));
  first->reset();  // the lock goes with it
  EXPECT_TRUE(RunDir::Claim(dir).ok());
}

TEST(RunDirTest, RefusesAPlantedSymlinkAndLeavesItsTarget) {
  const std::string dir = FreshDir("planted");
  const std::string target = FreshDir("planted_target") + "/precious";
  Write(target, "keep me");
  for (const std::string& name :
       {std::string(kWeightsFile), std::string("metrics.csv.tmp"),
        std::string(".lock")}) {
    fs::remove(dir + "/.lock");  // left by the refused claim before
    fs::create_symlink(target, dir + "/" + name);
    const absl::Status s = RunDir::Claim(dir).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << name;
    EXPECT_THAT(std::string(s.message()), HasSubstr("--out=" + dir)) << name;
    EXPECT_EQ(Read(target), "keep me") << name;
    fs::remove(dir + "/" + name);
  }
}

TEST(RunDirTest, AnExistingRunIsRefusedUntouched) {
  const std::string dir = FreshDir("existing");
  absl::StatusOr<std::unique_ptr<RunDir>> claimed = RunDir::Claim(dir);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  EXPECT_TRUE((*claimed)->RefuseAnExistingRun().ok());
  Write(dir + "/metrics.csv", "epoch\n1\n");
  const absl::Status s = (*claimed)->RefuseAnExistingRun();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("already holds a run (metrics.csv); pass --resume to "
                        "continue it or --overwrite to replace it"));
  EXPECT_EQ(Read(dir + "/metrics.csv"), "epoch\n1\n");
}

TEST(RunDirTest, RemoveLeftoversTakesOnlyHalfWrittenFiles) {
  const std::string dir = FreshDir("leftovers");
  absl::StatusOr<std::unique_ptr<RunDir>> claimed = RunDir::Claim(dir);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  Write(dir + "/metrics.csv", "kept");
  Write(dir + "/metrics.csv.tmp", "half");
  Write(absl::StrCat(dir, "/", kPendingWeightsFile), "uncommitted");
  Write(dir + "/notes.txt", "the user's");
  (*claimed)->RemoveLeftovers();
  EXPECT_EQ(Read(dir + "/metrics.csv"), "kept");
  EXPECT_FALSE(fs::exists(dir + "/metrics.csv.tmp"));
  EXPECT_FALSE(fs::exists(absl::StrCat(dir, "/", kPendingWeightsFile)));
  EXPECT_EQ(Read(dir + "/notes.txt"), "the user's");
}

}  // namespace
}  // namespace dive::train
