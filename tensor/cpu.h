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
// The default is the best path the CPU has, except where its bf16
// dot-product instruction is slower than float32 FMA (`DefaultIsa`). The
// environment variable DIVE_ISA picks any path the CPU has instead, so that
// tests and benchmarks can run each of them on one machine:
//
//   DIVE_ISA=generic bazel-bin/bench/gemm_benchmark    # Eigen's GEMM
//   DIVE_ISA=avx2    bazel-bin/models/lenet/train      # the AVX2 kernels
//
// A value naming a path the CPU lacks, or no path at all, is an error the
// first caller reports (`IsaFromEnvironment`); `ActiveIsa()` then falls back
// to the default path.
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
  // The int8 dot products (tensor/qgemm.h): VPDPBUSD on zmm (AVX512-VNNI),
  // its VEX form on ymm (AVX-VNNI), TDPBUSD on tiles (AMX-INT8; counted, as
  // amx_tile, only once Linux has granted the tile data).
  bool avx512_vnni = false, avx_vnni = false, amx_int8 = false;
};

// Read once, on first use.
const CpuFeatures& DetectedCpu();

// Asks Linux for this process's AMX tile data (arch_prctl(
// ARCH_REQ_XCOMP_PERM)), which it keeps off until asked: the first tile
// instruction without it is SIGILL. Whether it is granted: false on CPUs
// without AMX and off Linux. DetectedCpu counts AMX only where it is; asking
// again is harmless (tensor/gemm.h's AMX self-check does).
bool RequestAmxPermission();

// The best path `features` allow.
Isa BestIsa(const CpuFeatures& features);

// The rate of bf16 multiply-adds by VDPBF16PS over that of float32 ones by
// FMA on this CPU, measured on first use (about 0.1 ms); 0 where BestIsa is
// below kAvx512Bf16. About 2 on AMD Zen 4 (VDPBF16PS does twice an FMA's
// work at FMA's rate), 0.5 on an Intel Xeon with AVX512-BF16 and no AMX
// (VDPBF16PS issues at half FMA's rate).
double Bf16DotRate();

// The path kernels take when DIVE_ISA does not choose one: `best`, except
// that kAvx512Bf16 gives way to kAvx512 where VDPBF16PS is not clearly faster
// than FMA (bf16_dot_rate < 1.25): bf16 products then run on the float32
// kernels with their operands rounded to bf16, the same products, faster.
Isa DefaultIsa(Isa best, double bf16_dot_rate);

// The path DIVE_ISA asks for (DefaultIsa of this CPU when unset);
// InvalidArgument naming the variable when it is not a path name or names
// one above what the CPU has.
absl::StatusOr<Isa> IsaFromEnvironment();

// The path kernels use: IsaFromEnvironment(), or this CPU's DefaultIsa when
// that is an error. Fixed at first use, except through SetActiveIsa, and
// except that kAmx gives way to kAvx512Bf16 where the AMX kernel fails the
// self-check of its first use (AmxSelfCheck in tensor/gemm.h).
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
