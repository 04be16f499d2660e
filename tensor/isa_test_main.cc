// main() for tests that run once per kernel path: `--dive_isa=NAME` (a name
// from tensor/cpu.h) switches the kernels to that path before any test, and
// on a CPU without it every test is skipped, saying so.
//
//   cc_test(name = "gemm_avx2_test", args = ["--dive_isa=avx2"], ...)

#include <cstdio>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "tensor/cpu.h"

namespace {

class IsaEnvironment : public ::testing::Environment {
 public:
  explicit IsaEnvironment(std::string isa) : isa_(std::move(isa)) {}

  void SetUp() override {
    absl::StatusOr<dive::Isa> isa = dive::ParseIsa(isa_);
    ASSERT_TRUE(isa.ok()) << "--dive_isa: " << isa.status();
    if (absl::Status s = dive::SetActiveIsa(*isa); !s.ok()) {
      GTEST_SKIP() << "skipped: " << s.message();
    }
    std::printf("cpu: %s\n", dive::CpuDescription().c_str());
  }

 private:
  const std::string isa_;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  constexpr char kFlag[] = "--dive_isa=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], kFlag, sizeof(kFlag) - 1) == 0) {
      ::testing::AddGlobalTestEnvironment(
          new IsaEnvironment(argv[i] + sizeof(kFlag) - 1));
    }
  }
  return RUN_ALL_TESTS();
}
