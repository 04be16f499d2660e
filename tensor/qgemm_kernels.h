// File: tensor/qgemm_kernels.h
// -----------------------------------------------------------------------------
//
// Internal to tensor/qgemm.cc: the int8 GEMM's micro-kernels, one file per
// instruction set, each compiled for its own ISA whatever the build's
// -march (qgemm_kernels_avx2.cc with -mavx2, qgemm_kernels_avx_vnni.cc with
// -mavxvnni too, qgemm_kernels_avx512_vnni.cc with AVX-512 F/BW/DQ/VL and
// -mavx512vnni, qgemm_kernels_amx.cc with -mamx-tile -mamx-int8), as the
// float32 GEMM's kernels are (tensor/gemm_kernels.h, which says why these
// files define plain functions and include only internal-linkage helpers).
//
// A kernel computes one tile of C = L * R, L [m, k] the broadcast ("left")
// operand and R [k, n] the vector ("right") one, both packed by qgemm.cc;
// one of them is uint8 (activations), the other int8 (weights), as
// `left_unsigned` says. Its int32 sums never leave registers unrequantized
// (AMX: they go through a 32 x 32 tile buffer in L1): the kernel applies
// QTileEpilogue to them and stores the tile as uint8, int32 or float.
//
// Packed layouts, k padded with zeros to the kernel's k_unit:
//   quads (generic, AVX-VNNI, AVX512-VNNI, avx2_u7): L panel [k / 4][mr][4]
//   bytes,
//       R panel [k / 4][nr][4] bytes (the four bytes of a VPDPBUSD lane);
//   pairs (AVX2 without VNNI): both widened to int16, L [k / 2][mr][2],
//       R [k / 2][nr][2] (the two int16 of a VPMADDWD lane): exact, where
//       VPMADDUBSW would saturate u8 * s8 pair sums to int16 (the avx2_u7
//       path's kernels use quads: VPMADDUBSW, exact for uint8 <= 127);
//   AMX: L [mr][k] bytes (rows, k contiguous), R [k / 4][nr][4] bytes.
// R panels are 64-byte aligned.

#ifndef TENSOR_QGEMM_KERNELS_H_
#define TENSOR_QGEMM_KERNELS_H_

#include <cstdint>

namespace dive::qgemm_internal {

enum class QStore { kUint8, kInt32, kFloat };

// What a kernel does to the tile's sums s (int32, exact) before storing
// them, per element (i, j) of the tile with ch = i (channel_is_row) or j:
//
//   v   = s + offset[ch]                 (int32; the bias and the zero-point
//                                         compensation, qgemm.cc)
//   kInt32: v
//   kFloat: float(double(v) * scale[ch]), then max(., 0) when `relu`
//   kUint8: round_half_even(clamp(double(v) * scale[ch], lo, hi)) + zero_point
//           with lo = (relu ? 0 : -zero_point), hi = 255 - zero_point
//
// The pointers are at the tile's first channel.
struct QTileEpilogue {
  QStore store = QStore::kInt32;
  bool channel_is_row = false;
  bool relu = false;
  const int32_t* offset = nullptr;
  const double* scale = nullptr;
  int32_t zero_point = 0;
  void* c = nullptr;  // the tile's first element: uint8_t, int32_t or float
  int64_t ldc = 0;    // in elements
};

// One tile: C[mr, nr] = epilogue(L-panel * R-panel), k_steps units of k_unit
// along k, mr <= the kernel's mr, nr <= its nr.
using QKernelFn = void (*)(int64_t k_steps, const void* l, const void* r,
                           const QTileEpilogue& e, int mr, int nr);

// The same with L int8 and R uint8 read in place: quad row q of the R
// panel (nr columns x 4 bytes, any alignment) at r + r_offsets[q]. The
// stride-1 convolution's R is the input itself, channels interleaved by 4
// (tensor/qconv.cc), so that no im2col is written.
using QIndirectKernelFn = void (*)(int64_t k_steps, const void* l,
                                   const uint8_t* r, const int64_t* r_offsets,
                                   const QTileEpilogue& e, int mr, int nr);

struct QKernel {
  int mr, nr;                 // tile
  int k_unit;                 // 4 (quads), 2 (pairs) or 64 (AMX)
  QKernelFn left_u8;          // L uint8, R int8
  QKernelFn right_u8;         // L int8, R uint8
  void (*enter)() = nullptr;  // per thread around its calls (AMX tiles)
  void (*leave)() = nullptr;
  QIndirectKernelFn right_u8_indirect = nullptr;  // quads kernels only
};

QKernel Avx2QKernel();  // 6 x 16, pairs, VPMADDWD
// 6 x 16, quads, VPMADDUBSW + VPMADDWD(ones): exact only where every byte
// of the uint8 operand is <= 127 (u8_within_127); else the same with each
// uint8 byte split into its low 7 bits and its high bit (two VPMADDUBSW),
// exact for any byte and about half as fast.
QKernel Avx2U7QKernel(bool u8_within_127);
QKernel AvxVnniQKernel();     // 6 x 16, quads, VEX VPDPBUSD on ymm
QKernel Avx512VnniQKernel();  // 6 x 64, quads, VPDPBUSD on zmm
QKernel AmxQKernel();         // 32 x 32, TDPBUSD / TDPBSUD

// The AMX kernel with its tile instructions computed in C++, defined only by
// the testonly //tensor:qgemm_kernels_amx_emulated: where a binary links it,
// the AMX path runs it (and counts as present on CPUs with AVX512-VNNI).
// Elsewhere its address is null.
QKernel AmxEmulatedQKernel() __attribute__((weak));

}  // namespace dive::qgemm_internal

#endif  // TENSOR_QGEMM_KERNELS_H_
