// File: tensor/cpu_probes.h
// -----------------------------------------------------------------------------
//
// Internal to tensor/cpu.cc: the instruction bursts that `Bf16DotRate` times
// against each other. They are compiled for AVX-512 and AVX512-BF16 whatever
// the build's -march (as the GEMM kernels are), so call them only where
// BestIsa(DetectedCpu()) >= Isa::kAvx512Bf16. They time instructions, not
// kernels: feature detection depends on no kernel.

#ifndef TENSOR_CPU_PROBES_H_
#define TENSOR_CPU_PROBES_H_

#include <cstdint>

namespace dive::cpu_internal {

// `iters` rounds of 12 independent chains of one instruction (VFMADD231PS,
// VDPBF16PS on zmm registers); the sums go to *sink so that nothing is
// optimized away.
void Avx512FmaBurst(int64_t iters, float* sink);
void Avx512Bf16DotBurst(int64_t iters, float* sink);

}  // namespace dive::cpu_internal

#endif  // TENSOR_CPU_PROBES_H_
