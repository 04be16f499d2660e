#include "tensor/cpu.h"

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dive {
namespace {

using ::testing::HasSubstr;

// The flags line of /proc/cpuinfo, as a set (empty off Linux).
std::set<std::string> ProcCpuFlags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) {
      std::istringstream words(line.substr(line.find(':') + 1));
      std::set<std::string> flags;
      for (std::string w; words >> w;) flags.insert(w);
      return flags;
    }
  }
  return {};
}

TEST(CpuTest, IsaNamesRoundTrip) {
  for (Isa isa :
       {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16, Isa::kAmx}) {
    absl::StatusOr<Isa> parsed = ParseIsa(IsaName(isa));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, isa);
  }
  absl::StatusOr<Isa> bad = ParseIsa("sse9");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("unknown instruction set 'sse9' (one of: generic, "
                        "avx2, avx512, avx512_bf16, amx)"));
}

TEST(CpuTest, BestIsaNeedsEveryFeatureOfAPath) {
  CpuFeatures f;
  EXPECT_EQ(BestIsa(f), Isa::kGeneric);
  f.avx2 = true;
  EXPECT_EQ(BestIsa(f), Isa::kGeneric) << "AVX2 without FMA";
  f.fma = true;
  EXPECT_EQ(BestIsa(f), Isa::kAvx2);
  f.avx512f = f.avx512bw = f.avx512dq = true;
  EXPECT_EQ(BestIsa(f), Isa::kAvx2) << "AVX-512 without VL";
  f.avx512vl = true;
  EXPECT_EQ(BestIsa(f), Isa::kAvx512);
  f.amx_tile = f.amx_bf16 = true;
  EXPECT_EQ(BestIsa(f), Isa::kAvx512) << "AMX without AVX512-BF16";
  f.avx512_bf16 = true;
  EXPECT_EQ(BestIsa(f), Isa::kAmx);
  f.amx_tile = false;
  EXPECT_EQ(BestIsa(f), Isa::kAvx512Bf16);
}

TEST(CpuTest, DetectionAgreesWithTheKernel) {
  const std::set<std::string> flags = ProcCpuFlags();
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo";
  const CpuFeatures& f = DetectedCpu();
  // The kernel lists what the CPU has and it enables.
  EXPECT_EQ(f.avx2, flags.count("avx2") == 1);
  EXPECT_EQ(f.fma, flags.count("fma") == 1);
  EXPECT_EQ(f.avx512f, flags.count("avx512f") == 1);
  EXPECT_EQ(f.avx512vl, flags.count("avx512vl") == 1);
  EXPECT_EQ(f.avx512_bf16, flags.count("avx512_bf16") == 1);
  EXPECT_EQ(f.amx_bf16, flags.count("amx_bf16") == 1);
  EXPECT_FALSE(f.brand.empty());
}

// Linux grants the tile data where the CPU has AMX, and again when asked
// again (the AMX self-check asks after detection has).
TEST(CpuTest, AmxPermissionAgreesWithDetection) {
  const bool amx = DetectedCpu().amx_tile;
  EXPECT_EQ(RequestAmxPermission(), amx);
  EXPECT_EQ(RequestAmxPermission(), amx);
}

TEST(CpuTest, DefaultIsaSkipsASlowBf16DotProduct) {
  EXPECT_EQ(DefaultIsa(Isa::kAvx512Bf16, 0.5), Isa::kAvx512);
  EXPECT_EQ(DefaultIsa(Isa::kAvx512Bf16, 1.2), Isa::kAvx512);
  EXPECT_EQ(DefaultIsa(Isa::kAvx512Bf16, 1.9), Isa::kAvx512Bf16);
  EXPECT_EQ(DefaultIsa(Isa::kAmx, 0.5), Isa::kAmx) << "AMX is not VDPBF16PS";
  EXPECT_EQ(DefaultIsa(Isa::kAvx512, 0), Isa::kAvx512);
  EXPECT_EQ(DefaultIsa(Isa::kAvx2, 0), Isa::kAvx2);
}

TEST(CpuTest, Bf16DotRateIsMeasuredWhereTheCpuHasIt) {
  const double rate = Bf16DotRate();
  if (BestIsa(DetectedCpu()) < Isa::kAvx512Bf16) {
    EXPECT_EQ(rate, 0);
  } else {
    // Half, equal or twice FMA's multiply-adds per second on the CPUs known.
    EXPECT_GT(rate, 0.3);
    EXPECT_LT(rate, 3.0);
    EXPECT_THAT(CpuDescription(), HasSubstr("x FMA's rate)"));
  }
}

TEST(CpuTest, EnvironmentCapsThePath) {
  const Isa best = BestIsa(DetectedCpu());
  ASSERT_EQ(unsetenv("DIVE_ISA"), 0);
  EXPECT_EQ(*IsaFromEnvironment(), DefaultIsa(best, Bf16DotRate()));
  if (best == Isa::kAvx512Bf16) {
    ASSERT_EQ(setenv("DIVE_ISA", "avx512_bf16", 1), 0);
    EXPECT_EQ(*IsaFromEnvironment(), Isa::kAvx512Bf16)
        << "DIVE_ISA may choose VDPBF16PS where it is not the default";
  }
  ASSERT_EQ(setenv("DIVE_ISA", "generic", 1), 0);
  EXPECT_EQ(*IsaFromEnvironment(), Isa::kGeneric);
  ASSERT_EQ(setenv("DIVE_ISA", "avx-512", 1), 0);
  absl::StatusOr<Isa> bad = IsaFromEnvironment();
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("DIVE_ISA: unknown instruction set 'avx-512'"));
  if (best != Isa::kAmx) {
    ASSERT_EQ(setenv("DIVE_ISA", "amx", 1), 0);
    absl::StatusOr<Isa> above = IsaFromEnvironment();
    ASSERT_FALSE(above.ok());
    EXPECT_THAT(above.status().message(),
                HasSubstr(std::string("DIVE_ISA=amx: this CPU's best is ") +
                          std::string(IsaName(best))));
  }
  ASSERT_EQ(unsetenv("DIVE_ISA"), 0);
}

TEST(CpuTest, SetActiveIsaRefusesWhatTheCpuLacks) {
  const Isa best = BestIsa(DetectedCpu());
  ASSERT_TRUE(SetActiveIsa(Isa::kGeneric).ok());
  EXPECT_EQ(ActiveIsa(), Isa::kGeneric);
  EXPECT_THAT(CpuDescription(), HasSubstr("; kernels: generic"));
  ASSERT_TRUE(SetActiveIsa(best).ok());
  EXPECT_EQ(ActiveIsa(), best);
  if (best != Isa::kAmx) {
    const absl::Status s = SetActiveIsa(Isa::kAmx);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(s.message(), HasSubstr("this CPU cannot run amx kernels"));
    EXPECT_EQ(ActiveIsa(), best);
  }
}

}  // namespace
}  // namespace dive
