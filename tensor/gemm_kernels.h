// File: tensor/gemm_kernels.h
// -----------------------------------------------------------------------------
//
// Internal to tensor/gemm.cc: the GEMM's innermost loops, one file per
// instruction set, each compiled for its own ISA (gemm_kernels_avx2.cc with
// -mavx2 -mfma, gemm_kernels_avx512.cc with AVX-512 F/BW/DQ/VL,
// gemm_kernels_avx512_bf16.cc with AVX512-BF16 too, gemm_kernels_amx.cc with
// AMX-TILE and AMX-BF16) whatever the build's -march, so one binary holds every
// path and gemm.cc picks one at run time (tensor/cpu.h). A kernel runs only
// where ActiveIsa() allows it. gemm.cc builds each path's descriptor
// (GemmPath: these kernels with their blocking and packers) from the
// declarations here.
//
// This header belongs to //tensor:gemm_kernels alone; the per-ISA libraries
// (//tensor:gemm_kernels_<isa>) depend on it and define what it declares.
//
// These files include nothing but <immintrin.h>, <cstdint> and headers of
// internal-linkage helpers (gemm_kernels_avx512_tile.h), and define plain
// functions: an inline or template function with external linkage
// instantiated there would be compiled for that ISA and could be the copy
// the linker keeps for every other caller.
//
// Packed layouts (gemm.cc packs them):
//   A panel: [kc][kGemmMr], alpha folded in, rows past m zero;
//   B panel: [kc][nr], 64-byte aligned, columns past n zero.
// and for the bf16 kernels, B as pairs along k side by side (the layout of
// VDPBF16PS's and TDPBF16PS's B operand: the two bf16 of a 32-bit lane are
// k = 2p, 2p + 1), k padded with zeros to the kernel's unit:
//   A panel: [kc / 2][kGemmMr][2] (AVX512-BF16) or [32][kc] (AMX);
//   B panel: [kc / 2][nr][2], 64-byte aligned, columns past n zero.

#ifndef TENSOR_GEMM_KERNELS_H_
#define TENSOR_GEMM_KERNELS_H_

#include <cstdint>

namespace dive::gemm_internal {

// Rows of C per float32 micro-kernel tile, the same for every ISA (so a
// packed A serves any of them); the AVX512-BF16 kernel's too.
constexpr int kGemmMr = 6;

// C[mr, nr] = A-panel * B-panel (+ C when `accumulate`), for mr <= kGemmMr
// and nr <= the kernel's tile width; edge tiles write only [mr, nr].
using MicroKernelFn = void (*)(int64_t kc, const float* a, const float* b,
                               float* c, int64_t ldc, int mr, int nr,
                               bool accumulate);

struct MicroKernel {
  int mr;  // rows of C per tile: kGemmMr
  int nr;  // columns of C per tile
  MicroKernelFn run;
};

MicroKernel Avx2MicroKernel();    // 6 x 16, 12 ymm accumulators
MicroKernel Avx512MicroKernel();  // 6 x 64, 24 zmm accumulators

// The same on bf16 panels, kc along k (a multiple of the kernel's k_unit,
// the panels zero past the product's k).
using Bf16MicroKernelFn = void (*)(int64_t kc, const uint16_t* a,
                                   const uint16_t* b, float* c, int64_t ldc,
                                   int mr, int nr, bool accumulate);

struct Bf16MicroKernel {
  int mr, nr;  // rows and columns of C per tile
  int k_unit;  // kc is padded to a multiple of it
  Bf16MicroKernelFn run;
  // Called by each thread before and after its calls of `run` (AMX: the
  // tile configuration), when not null.
  void (*enter)() = nullptr;
  void (*leave)() = nullptr;
};

// 6 x 64, VDPBF16PS; A panel [kc / 2][kGemmMr][2], B panel [kc / 2][64][2].
Bf16MicroKernel Avx512Bf16MicroKernel();

// 32 x 32, TDPBF16PS on four C tiles; A panel [32][kc] (rows of A, k
// contiguous), B panel [kc / 2][32][2]; kc a multiple of 32.
Bf16MicroKernel AmxMicroKernel();

// The same kernel with the tile instructions computed in C++, defined only
// by the testonly //tensor:gemm_kernels_amx_emulated (gemm_kernels_amx.cc
// built with DIVE_AMX_EMULATE): where a binary links it, the AMX path runs it
// instead of AmxMicroKernel, and needs no tile data from Linux. Elsewhere its
// address is null.
Bf16MicroKernel AmxEmulatedMicroKernel() __attribute__((weak));

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

// The same on bf16 rows (kp a multiple of 32, rows zero past k; B's
// 64-byte aligned).
void Avx512Bf16NtKernel(int64_t kp, const uint16_t* a, int64_t lda,
                        const uint16_t* b, int64_t ldb, float* c, int64_t ldc,
                        int mr, int nr);

// A float32 panel [kc][nr] as bf16 pairs [ceil(kc / 2)][nr][2] (an A panel
// for nr = kGemmMr, a B panel for the kernel's nr), rounded to nearest even;
// pair members past kc are zero.
void Avx512Bf16PackPairs(const float* src, int64_t kc, int64_t nr,
                         uint16_t* dst);

// dst[0 : n] = src[0 : n] rounded to bf16, dst[n : n_pad] = 0.
void Avx512Bf16Convert(const float* src, int64_t n, int64_t n_pad,
                       uint16_t* dst);

}  // namespace dive::gemm_internal

#endif  // TENSOR_GEMM_KERNELS_H_
