// Smoke test of the third-party wiring (WORKSPACE + third_party/*.BUILD):
// each external library's headers compile, its symbols link, and the
// Fashion-MNIST data files are reachable through runfiles.

#include <omp.h>
#include <zlib.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "Eigen/Dense"
#include "absl/container/inlined_vector.h"
#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tools/cpp/runfiles/runfiles.h"

ABSL_FLAG(int, wiring_test_flag, 42, "A flag, to check that absl flags link.");

namespace dive {
namespace {

using ::bazel::tools::cpp::runfiles::Runfiles;
using ::testing::ElementsAre;

absl::StatusOr<int> ParsePositive(int x) {
  if (x <= 0) return absl::InvalidArgumentError(absl::StrFormat("bad: %d", x));
  return x;
}

TEST(WiringTest, Eigen) {
  Eigen::Matrix2f m;
  m << 1, 2, 3, 4;
  Eigen::Vector2f v(1, 1);
  Eigen::Vector2f r = m * v;
  EXPECT_FLOAT_EQ(r(0), 3.0f);
  EXPECT_FLOAT_EQ(r(1), 7.0f);
}

TEST(WiringTest, NlohmannJson) {
  const nlohmann::json j = nlohmann::json::parse(R"({"a": [1, 2.5, "x"]})",
                                                 nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j.dump(), R"({"a":[1,2.5,"x"]})");
}

TEST(WiringTest, AbslStatusAndStrings) {
  EXPECT_EQ(*ParsePositive(3), 3);
  absl::StatusOr<int> bad = ParsePositive(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "bad: -1");
  std::vector<std::string> parts = absl::StrSplit("a,b,c", ',');
  EXPECT_THAT(parts, ElementsAre("a", "b", "c"));
  EXPECT_EQ(absl::StrJoin(parts, "-"), "a-b-c");
  EXPECT_EQ(absl::StrCat("x", 1, 2.5), "x12.5");
}

TEST(WiringTest, AbslFlagsSyncTimeRandomContainers) {
  EXPECT_EQ(absl::GetFlag(FLAGS_wiring_test_flag), 42);
  absl::SetProgramUsageMessage("wiring_test");
  char arg0[] = "wiring_test";
  char arg1[] = "--wiring_test_flag=7";
  char arg2[] = "positional";
  char* argv[] = {arg0, arg1, arg2};
  std::vector<char*> rest = absl::ParseCommandLine(3, argv);
  EXPECT_EQ(rest.size(), 2u);
  EXPECT_EQ(absl::GetFlag(FLAGS_wiring_test_flag), 7);

  absl::flat_hash_map<std::string, int> map = {{"a", 1}};
  EXPECT_EQ(map.at("a"), 1);

  absl::Mutex mu;
  int counter = 0;
  {
    absl::MutexLock lock(&mu);
    ++counter;
  }
  EXPECT_EQ(counter, 1);

  const absl::Time start = absl::Now();
  EXPECT_GE(absl::Now() - start, absl::ZeroDuration());

  absl::BitGen gen;
  const int r = absl::Uniform(gen, 0, 10);
  EXPECT_GE(r, 0);
  EXPECT_LT(r, 10);

  absl::InlinedVector<int, 4> iv = {1, 2, 3};
  absl::Span<const int> s(iv);
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s[2], 3);
}

TEST(WiringTest, GlogAndOpenMP) {
  LOG(INFO) << "glog works";
  CHECK_EQ(1 + 1, 2);
  EXPECT_GE(FLAGS_v, 0);  // glog's gflags-defined flag.
  EXPECT_GE(omp_get_max_threads(), 1);
  int64_t sum = 0;
#pragma omp parallel for reduction(+ : sum)
  for (int i = 1; i <= 1000; ++i) sum += i;
  EXPECT_EQ(sum, 500500);
}

// Reads the first bytes of a gzip-compressed IDX file with zlib.
std::vector<uint8_t> ReadGzHeader(const std::string& path, int n) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return {};
  std::vector<uint8_t> buf(n);
  const int got = gzread(f, buf.data(), n);
  gzclose(f);
  buf.resize(got < 0 ? 0 : got);
  return buf;
}

uint32_t BigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

TEST(WiringTest, FashionMnistRunfiles) {
  std::string error;
  std::unique_ptr<Runfiles> runfiles(Runfiles::CreateForTest(&error));
  ASSERT_NE(runfiles, nullptr) << error;

  struct Expected {
    const char* name;
    uint32_t magic;
    uint32_t count;
  };
  const std::array<Expected, 4> files = {{
      {"train-images-idx3-ubyte.gz", 0x803, 60000},
      {"train-labels-idx1-ubyte.gz", 0x801, 60000},
      {"t10k-images-idx3-ubyte.gz", 0x803, 10000},
      {"t10k-labels-idx1-ubyte.gz", 0x801, 10000},
  }};
  for (const Expected& e : files) {
    // Canonical runfiles path of a file in external repository @fashion_mnist.
    const std::string path = runfiles->Rlocation(absl::StrCat("fashion_mnist/", e.name));
    std::vector<uint8_t> header = ReadGzHeader(path, 8);
    ASSERT_EQ(header.size(), 8u) << path;
    EXPECT_EQ(BigEndian32(header.data()), e.magic) << path;
    EXPECT_EQ(BigEndian32(header.data() + 4), e.count) << path;
  }

  // The same files relative to the test's working directory ($TEST_SRCDIR/dive).
  EXPECT_EQ(ReadGzHeader("../fashion_mnist/t10k-labels-idx1-ubyte.gz", 8).size(), 8u);
  EXPECT_EQ(ReadGzHeader("external/fashion_mnist/t10k-labels-idx1-ubyte.gz", 8).size(), 8u);
}

}  // namespace
}  // namespace dive
