// File: tensor/gemm_kernels.h
// -----------------------------------------------------------------------------
//
// Internal to tensor/gemm.cc: the GEMM's innermost loops, one file per
// instruction set, each compiled for its own ISA (gemm_kernels_avx2.cc with
// -mavx2 -mfma, gemm_kernels_avx512.cc with AVX-512 F/BW/DQ/VL) whatever the
// build's -march, so one binary holds every path and gemm.cc picks one at run
// time (tensor/cpu.h). A kernel runs only where ActiveIsa() allows it.
//
// These files include nothing but <immintrin.h> and <cstdint> and define
// plain functions: an inline or template function instantiated there would
// be compiled for that ISA and could be the copy the linker keeps for every
// other caller.
//
// Packed layouts (gemm.cc packs them):
//   A panel: [kc][kGemmMr], alpha folded in, rows past m zero;
//   B panel: [kc][nr], 64-byte aligned, columns past n zero.

#ifndef TENSOR_GEMM_KERNELS_H_
#define TENSOR_GEMM_KERNELS_H_

#include <cstdint>

namespace dive::gemm_internal {

// Rows of C per micro-kernel tile, the same for every ISA (so a packed A
// serves any of them).
constexpr int kGemmMr = 6;

// C[mr, nr] = A-panel * B-panel (+ C when `accumulate`), for mr <= kGemmMr
// and nr <= the kernel's tile width; edge tiles write only [mr, nr].
using MicroKernelFn = void (*)(int64_t kc, const float* a, const float* b,
                               float* c, int64_t ldc, int mr, int nr,
                               bool accumulate);

struct MicroKernel {
  int nr;  // columns of C per tile
  MicroKernelFn run;
};

MicroKernel Avx2MicroKernel();    // 6 x 16, 12 ymm accumulators
MicroKernel Avx512MicroKernel();  // 6 x 64, 24 zmm accumulators

// dst[p * ld + j] = src[j * lds + p] for p, j < 16, through registers.
void Avx512Transpose16x16(const float* src, int64_t lds, float* dst,
                          int64_t ld);

// GemmNT's tile: C[i, j] += sum_p A[i, p] * B[j, p] for i < mr <= kNtM,
// j < nr <= kNtRows, p < kp; rows of A at a + i * lda, rows of B at
// b + j * ldb, zero-padded to a multiple of 16 and 64-byte aligned.
constexpr int kNtM = 6;
constexpr int kNtRows = 4;
void Avx512NtKernel(int64_t kp, const float* a, int64_t lda, const float* b,
                    int64_t ldb, float* c, int64_t ldc, int mr, int nr);

}  // namespace dive::gemm_internal

#endif  // TENSOR_GEMM_KERNELS_H_
