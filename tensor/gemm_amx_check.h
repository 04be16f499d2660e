// File: tensor/gemm_amx_check.h
// -----------------------------------------------------------------------------
//
// Internal to tensor/gemm.cc: the AMX kernel's self-check (AmxSelfCheck in
// tensor/gemm.h), which the GEMM asks before its first bf16 product on the
// AMX path. The check is a GEMM of its own, run on the asking thread.

#ifndef TENSOR_GEMM_AMX_CHECK_H_
#define TENSOR_GEMM_AMX_CHECK_H_

#include "tensor/cpu.h"

namespace dive::gemm_internal {

// Whether bf16 products may run on the AMX kernel: it has passed the
// self-check (run now if the AMX path is active and it has not run), or is
// running it on this thread. Where it fails, ActiveIsa() becomes
// AmxFallback().
bool AmxPassed();

// The path below AMX, within what the CPU has (the emulated AMX path runs on
// CPUs without AMX).
Isa AmxFallback();

// Whether the AMX path runs the emulated kernel (a binary that links
// //tensor:gemm_kernels_amx_emulated), which needs no tile data from Linux.
bool AmxEmulated();

}  // namespace dive::gemm_internal

#endif  // TENSOR_GEMM_AMX_CHECK_H_
