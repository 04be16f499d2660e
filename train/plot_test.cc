// The plot's gnuplot script holds no string from the user, and gnuplot draws
// a PNG into the file descriptor it is given.

#include "train/plot.h"

#include <stdio.h>
#include <unistd.h>

#include <cstdlib>
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

TEST(PlotMetricsTest, WritesAPngToTheDescriptor) {
  // tools/setup.sh installs gnuplot-nox: without it this fails, not skips.
  ASSERT_EQ(std::system("command -v gnuplot > /dev/null 2>&1"), 0)
      << "gnuplot is not installed (tools/setup.sh installs gnuplot-nox)";
  FILE* f = tmpfile();
  ASSERT_NE(f, nullptr);
  const absl::Status s = PlotMetrics(kCsv, fileno(f), "x'\nsystem 'id'");
  ASSERT_TRUE(s.ok()) << s;
  char magic[8] = {};
  ASSERT_EQ(pread(fileno(f), magic, 8, 0), 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  fclose(f);
}

}  // namespace
}  // namespace dive::train
