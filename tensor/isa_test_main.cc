// main() for tests that run once per kernel path: `--dive_isa=NAME` (a name
// from tensor/cpu.h) switches the kernels to that path before any test, and
// on a CPU without it every test is skipped, saying so.
//
//   cc_test(name = "gemm_avx2_test", args = ["--dive_isa=avx2"], ...)
//
// With `--dive_isa_emulated` the binary's kernels of that path are emulated
// (tensor:gemm_kernels_amx_emulated): the path is forced where the CPU has
// the one below it (AVX512-BF16 for AMX, whose GEMM uses it too).

#include <cstdio>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "tensor/cpu.h"

namespace {

class IsaEnvironment : public ::testing::Environment {
 public:
  IsaEnvironment(std::string isa, bool emulated)
      : isa_(std::move(isa)), emulated_(emulated) {}

  void SetUp() override {
    absl::StatusOr<dive::Isa> isa = dive::ParseIsa(isa_);
    ASSERT_TRUE(isa.ok()) << "--dive_isa: " << isa.status();
    ASSERT_TRUE(!emulated_ || *isa > dive::Isa::kGeneric)
        << "--dive_isa_emulated needs a path above generic";
    const dive::Isa below = static_cast<dive::Isa>(static_cast<int>(*isa) - 1);
    if (absl::Status s = dive::SetActiveIsa(emulated_ ? below : *isa);
        !s.ok()) {
      GTEST_SKIP() << "skipped: " << s.message();
    }
    if (emulated_) {
      dive::ForceActiveIsaForTesting(*isa);
      std::printf("%s kernels emulated\n", isa_.c_str());
    }
    std::printf("cpu: %s\n", dive::CpuDescription().c_str());
  }

 private:
  const std::string isa_;
  const bool emulated_;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  constexpr char kFlag[] = "--dive_isa=";
  const char* isa = nullptr;
  bool emulated = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], kFlag, sizeof(kFlag) - 1) == 0) {
      isa = argv[i] + sizeof(kFlag) - 1;
    } else if (std::strcmp(argv[i], "--dive_isa_emulated") == 0) {
      emulated = true;
    }
  }
  if (isa != nullptr) {
    ::testing::AddGlobalTestEnvironment(new IsaEnvironment(isa, emulated));
  }
  return RUN_ALL_TESTS();
}
