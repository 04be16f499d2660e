#include "cheatsheet/plot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace dive::cheatsheet {
namespace {

std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  return std::string(base != nullptr ? base : "/tmp") + "/" + name;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool IsSymlink(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

TEST(PlotTest, ValidateOutPathRejectsEmptyAndControlCharacters) {
  EXPECT_TRUE(ValidateOutPath("/tmp/cheatsheet out").ok());
  EXPECT_EQ(ValidateOutPath("").code(), absl::StatusCode::kInvalidArgument);
  for (const std::string& bad :
       {std::string("/tmp/a\nset output '/etc/x'"), std::string("/tmp/\x1b[2J"),
        std::string("/tmp/tab\there"), std::string("/tmp/del\x7f"),
        std::string("/tmp/nul\0x", 10)}) {
    const absl::Status s = ValidateOutPath(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("control character"), std::string::npos) << s;
  }
  EXPECT_EQ(ValidateOutPath(std::string(5000, 'a')).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(OutputDir::Open("/tmp/a\nb").ok());
}

TEST(PlotTest, ResolveOutPathUsesTheBazelRunDirectory) {
  setenv("BUILD_WORKING_DIRECTORY", "/home/me", 1);
  EXPECT_EQ(ResolveOutPath("out"), "/home/me/out");
  EXPECT_EQ(ResolveOutPath("/abs"), "/abs");
  unsetenv("BUILD_WORKING_DIRECTORY");
  EXPECT_EQ(ResolveOutPath("out"), "out");
}

TEST(PlotTest, OpenCreatesMissingDirectoriesAndRefusesSymlinks) {
  const std::string dir = TempDir("made/by/open");
  ASSERT_TRUE(OutputDir::Open(dir).ok());
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));

  const std::string link = TempDir("link_to_dir");
  ASSERT_EQ(symlink(dir.c_str(), link.c_str()), 0);
  const absl::StatusOr<OutputDir> through = OutputDir::Open(link);
  EXPECT_EQ(through.status().code(), absl::StatusCode::kFailedPrecondition);

  const std::string file = TempDir("plain_file");
  std::ofstream(file) << "x";
  EXPECT_FALSE(OutputDir::Open(file).ok());
}

TEST(PlotTest, WriteFileRefusesASymlinkInsteadOfFollowingIt) {
  const std::string dir = TempDir("write");
  absl::StatusOr<OutputDir> out = OutputDir::Open(dir);
  ASSERT_TRUE(out.ok()) << out.status();
  const std::string victim = TempDir("victim.txt");
  std::ofstream(victim) << "precious";
  ASSERT_EQ(symlink(victim.c_str(), (dir + "/link.dat").c_str()), 0);

  const absl::Status s = out->WriteFile("link.dat", "1 2\n3 4\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("symbolic link"), std::string::npos) << s;
  EXPECT_EQ(ReadAll(victim), "precious");
  EXPECT_TRUE(IsSymlink(dir + "/link.dat"));

  ASSERT_TRUE(out->WriteFile("data.dat", "1 2\n3 4\n").ok());
  EXPECT_EQ(ReadAll(dir + "/data.dat"), "1 2\n3 4\n");
  // Writing again replaces the contents; no temporary file is left behind.
  ASSERT_TRUE(out->WriteFile("data.dat", "5\n").ok());
  EXPECT_EQ(ReadAll(dir + "/data.dat"), "5\n");
  EXPECT_EQ(access((dir + "/data.dat.tmp").c_str(), F_OK), -1);
}

TEST(PlotTest, WriteFileTakesOnlyPlainNames) {
  absl::StatusOr<OutputDir> out = OutputDir::Open(TempDir("names"));
  ASSERT_TRUE(out.ok());
  for (const char* bad : {"", "../escape.dat", "a/b.dat", ".hidden",
                                "x y.dat", "semi;colon"}) {
    EXPECT_EQ(out->WriteFile(bad, "x").code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(PlotTest, PlotWritesAPngFromTheDataFile) {
  const std::string dir = TempDir("png");
  absl::StatusOr<OutputDir> out = OutputDir::Open(dir);
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(out->WriteFile("line.dat", "0 0\n1 1\n2 4\n").ok());
  const absl::Status s =
      out->Plot("plot 'line.dat' using 1:2 with lines title 'x^2'", "line.png",
                320, 240);
  if (s.code() == absl::StatusCode::kUnavailable) {
    GTEST_SKIP() << s;  // gnuplot is not installed here
  }
  ASSERT_TRUE(s.ok()) << s;
  const std::string png = ReadAll(dir + "/line.png");
  ASSERT_GT(png.size(), 100u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));

  // A broken script is an error, not an empty PNG.
  EXPECT_EQ(out->Plot("plot 'missing.dat' with lines", "bad.png").code(),
            absl::StatusCode::kInternal);
  EXPECT_NE(access((dir + "/bad.png").c_str(), F_OK), 0);
}

}  // namespace
}  // namespace dive::cheatsheet
