// The plot's gnuplot script holds no string from the user, gnuplot draws a
// PNG into the file descriptor it is given, and WritePng leaves a whole PNG
// or nothing.

#include "train/plot.h"

#include <stdio.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace dive::train {
namespace {

constexpr char kCsv[] =
    "epoch,loss,train_acc,test_acc,seconds,examples_per_sec\n"
    "1,0.5,0.8,0.75,1.0,100.0\n"
    "2,0.25,0.9,0.85,1.0,100.0\n";

TEST(PlotScriptTest, HostileTitleAndRowsNeverBecomeCode) {
  const std::string hostile_title = "x'\nsystem \"touch pwned\"\n`id`@m$v\\";
  const std::string hostile_csv = std::string(kCsv) +
                                  "3,1,1,1,1,1\nsystem \"touch pwned\"\n"
                                  "EOD\nsystem 'id',1,2,3\n";
  const std::string script = PlotScript(hostile_csv, hostile_title);
  // No line of the script starts with anything but the fixed commands and
  // the datablock's numbers.
  for (absl::string_view line : absl::StrSplit(script, '\n')) {
    EXPECT_FALSE(absl::StartsWith(line, "system")) << script;
  }
  for (char c : {'`', '"', '@', '\\'}) {
    // '\\' only as the fixed line continuations of the plot command.
    if (c == '\\') continue;
    EXPECT_EQ(script.find(c), std::string::npos) << c << " in " << script;
  }
  EXPECT_NE(script.find("\nset title 'x??system ?touch pwned???id??m?v?'\n"),
            std::string::npos)
      << script;
  // The rows that parse become numbers, in one datablock ended once.
  EXPECT_NE(script.find("$metrics << EOD\n1 0.5 0.8 0.75\n2 0.25 0.9 0.85\n"
                        "3 1 1 1\nEOD\n"),
            std::string::npos)
      << script;
}

TEST(PlotScriptTest, DrawsAPngWithAHostileTitle) {
  // tools/setup.sh installs gnuplot-nox: without it this fails, not skips.
  ASSERT_EQ(std::system("command -v gnuplot > /dev/null 2>&1"), 0)
      << "gnuplot is not installed (tools/setup.sh installs gnuplot-nox)";
  FILE* f = tmpfile();
  ASSERT_NE(f, nullptr);
  const absl::Status s =
      RunGnuplot(PlotScript(kCsv, "x'\nsystem 'id'"), fileno(f));
  ASSERT_TRUE(s.ok()) << s;
  char magic[8] = {};
  ASSERT_EQ(pread(fileno(f), magic, 8, 0), 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  fclose(f);
}

TEST(WritePngTest, WritesWholeImagesOrNothing) {
  ASSERT_EQ(std::system("command -v gnuplot > /dev/null 2>&1"), 0)
      << "gnuplot is not installed (tools/setup.sh installs gnuplot-nox)";
  const std::string dir = ::testing::TempDir();
  const std::string png = dir + "/curves.png";
  ASSERT_TRUE(WritePng(png, PlotScript(kCsv, "t")).ok());
  std::ifstream in(png, std::ios::binary);
  std::string magic(4, '\0');
  in.read(magic.data(), 4);
  EXPECT_EQ(magic, "\x89PNG");
  EXPECT_NE(access((png + ".tmp").c_str(), F_OK), 0);

  // A script that fails: an error with gnuplot's own last words, no file.
  const std::string bad = dir + "/bad.png";
  const absl::Status s =
      WritePng(bad, "set terminal pngcairo\nplot 'missing.dat' with lines\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_NE(access(bad.c_str(), F_OK), 0);
  EXPECT_NE(access((bad + ".tmp").c_str(), F_OK), 0);
  // A script that prints no PNG.
  EXPECT_EQ(WritePng(bad, "print 1\n").code(), absl::StatusCode::kInternal);
  EXPECT_NE(access(bad.c_str(), F_OK), 0);
}

TEST(GnuplotQuoteTest, QuotesAndKeepsOnlySafeCharacters) {
  EXPECT_EQ(GnuplotQuote("LeNet-5 (bf16), lr 0.9"), "'LeNet-5 (bf16), lr 0.9'");
  EXPECT_EQ(GnuplotQuote(std::string("a'b\"c`d@e$f\\g\nh\0i", 17)),
            "'a?b?c?d?e?f?g?h?i'");
}

}  // namespace
}  // namespace dive::train
