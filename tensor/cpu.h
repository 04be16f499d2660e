// File: tensor/cpu.h
// -----------------------------------------------------------------------------
//
// Which instruction sets this process may use, decided at run time: cpuid
// says what the CPU has, XCR0 (xgetbv) what the operating system saves on a
// context switch (AVX-512 and AMX state), and on Linux the AMX tile data is
// requested from the kernel (arch_prctl(ARCH_REQ_XCOMP_PERM)) before it is
// counted. Kernels with several implementations (tensor/gemm.cc) ask
// `ActiveIsa()` which one to run.
//
// The environment variable DIVE_ISA caps the choice at a lower path, so that
// tests and benchmarks can run every path the CPU has on one machine:
//
//   DIVE_ISA=generic bazel-bin/bench/gemm_benchmark    # Eigen's GEMM
//   DIVE_ISA=avx2    bazel-bin/models/lenet/train      # the AVX2 kernels
//
// A value naming a path the CPU lacks, or no path at all, is an error the
// first caller reports (`IsaFromEnvironment`); `ActiveIsa()` then falls back
// to the best path the CPU has.
//
// Example (the trainers' first log line):
//
//   LOG(INFO) << "cpu: " << dive::CpuDescription();
//   // cpu: AMD EPYC; avx2 fma; kernels: avx2

#ifndef TENSOR_CPU_H_
#define TENSOR_CPU_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dive {

// The kernel paths, each a superset of the one before.
enum class Isa {
  kGeneric,     // portable C++ (Eigen)
  kAvx2,        // AVX2 + FMA
  kAvx512,      // AVX-512 F, BW, DQ, VL
  kAvx512Bf16,  // + AVX512-BF16 (VDPBF16PS)
  kAmx,         // + AMX-TILE and AMX-BF16 (TDPBF16PS)
};

// "generic", "avx2", "avx512", "avx512_bf16", "amx".
absl::string_view IsaName(Isa isa);
absl::StatusOr<Isa> ParseIsa(absl::string_view name);

struct CpuFeatures {
  std::string brand;  // "AMD EPYC 9R14 96-Core Processor"
  // Usable: present in cpuid and enabled by the operating system.
  bool avx2 = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512_bf16 = false;
  bool amx_tile = false, amx_bf16 = false;
};

// Read once, on first use.
const CpuFeatures& DetectedCpu();

// The best path `features` allow.
Isa BestIsa(const CpuFeatures& features);

// The path DIVE_ISA asks for (BestIsa when unset); InvalidArgument naming the
// variable when it is not a path name or names one above what the CPU has.
absl::StatusOr<Isa> IsaFromEnvironment();

// The path kernels use: IsaFromEnvironment(), or BestIsa() when that is an
// error. Fixed at first use, except through SetActiveIsa.
Isa ActiveIsa();

// Switches kernels to `isa` (tests and benchmarks run each path this way);
// FailedPrecondition when the CPU lacks it. Not thread-safe against running
// kernels.
absl::Status SetActiveIsa(Isa isa);

// Tests only: switches kernels to `isa` even where the CPU lacks it, for a
// test binary built with that path's kernels emulated
// (//tensor:gemm_amx_emulated_test). Real kernels of a path the CPU lacks
// crash on their first instruction.
void ForceActiveIsaForTesting(Isa isa);

// One line for logs and benchmark output: brand, features, active path.
std::string CpuDescription();

}  // namespace dive

#endif  // TENSOR_CPU_H_
