#include "tensor/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <type_traits>
#include <vector>

#include "Eigen/Core"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "tensor/bf16.h"
#include "tensor/cpu.h"
#include "tensor/gemm_amx_check.h"
#include "tensor/gemm_kernels.h"
#include "tensor/kernel_util.h"

namespace dive {
namespace {

using gemm_internal::AmxEmulated;
using gemm_internal::AmxFallback;
using gemm_internal::AmxPassed;
using kernel_internal::CeilDiv;
using kernel_internal::RoundUp;
using kernel_internal::ThreadSlab;

// Scales the m x n matrix C by beta (beta == 0 writes zeros, so NaN garbage
// in C is ignored as BLAS requires).
void ScaleC(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  if (beta == 1.0f) return;
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (beta == 0.0f) {
      std::fill(row, row + n, 0.0f);
    } else {
      for (int64_t j = 0; j < n; ++j) row[j] *= beta;
    }
  }
}

// Memory for `bytes` bytes on 64-byte boundaries (whole cache lines), for
// std::free.
void* AlignedBytes(int64_t bytes) {
  return std::aligned_alloc(64, static_cast<size_t>(RoundUp(bytes, 64)));
}

// Buffers of this thread's that only grow, so the steady state of a training
// loop allocates nothing here; one per use, as one GEMM needs several.
enum BufferSlot { kRhsBlock, kRhsPanel, kLhsRows, kLhsPanel, kBufferSlots };

void* ThreadBytes(BufferSlot slot, int64_t bytes) {
  struct Buffer {
    void* data = nullptr;
    int64_t bytes = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buffers[kBufferSlots];
  Buffer& b = buffers[slot];
  if (b.bytes < bytes) {
    std::free(b.data);
    b.data = AlignedBytes(bytes);
    b.bytes = bytes;
  }
  return b.data;
}

template <typename T>
T* ThreadBuffer(BufferSlot slot, int64_t count) {
  return static_cast<T*>(
      ThreadBytes(slot, count * static_cast<int64_t>(sizeof(T))));
}

// dst[p * ld + j] = src[j * lds + p] for p, j < 16, through registers
// (gemm_internal::Avx512Transpose16x16).
using Transpose16x16Fn = void (*)(const float* src, int64_t lds, float* dst,
                                  int64_t ld);

// B stored row-major as a GemmRhs: op(B)[p0 : p0 + kc, j0 : j0 + nc], its
// transposed 16 x 16 blocks through `transpose` when not null.
void CopyStored(bool trans, const float* b, int64_t ldb, int64_t p0, int64_t kc,
                int64_t j0, int64_t nc, float* __restrict dst, int64_t ld,
                Transpose16x16Fn transpose) {
  if (!trans) {
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = b + (p0 + p) * ldb + j0;
      std::copy(src, src + nc, dst + p * ld);
    }
    return;
  }
  // op(B) = B^T (a Linear layer's weights): 16 x 16 blocks, through
  // registers where the path can; scalar edges.
  auto element = [&](int64_t p, int64_t j) {
    dst[p * ld + j] = b[(j0 + j) * ldb + p0 + p];
  };
  int64_t j = 0;
  for (; j + 16 <= nc; j += 16) {
    int64_t p = 0;
    for (; p + 16 <= kc; p += 16) {
      const float* block = b + (j0 + j) * ldb + p0 + p;
      if (transpose != nullptr) {
        transpose(block, ldb, dst + p * ld + j, ld);
      } else {
        for (int64_t pp = 0; pp < 16; ++pp) {
          for (int64_t jj = 0; jj < 16; ++jj) {
            dst[(p + pp) * ld + j + jj] = block[jj * ldb + pp];
          }
        }
      }
    }
    for (; p < kc; ++p) {
      for (int64_t jj = j; jj < j + 16; ++jj) element(p, jj);
    }
  }
  for (; j < nc; ++j) {
    for (int64_t p = 0; p < kc; ++p) element(p, j);
  }
}

// -----------------------------------------------------------------------------
// Packed GEMM (the BLIS structure, row-major), with the micro-kernel of the
// active path (gemm_kernels.h): 6 x 64 tiles in 24 zmm registers with AVX-512
// (24 FMAs per 10 loads), 6 x 16 in 12 ymm registers with AVX2.
//
// C is cut into mr x nr tiles. For every p of the shared dimension the
// micro-kernel broadcasts mr values of A and loads nr / lanes vectors of B.
// A and B are first copied ("packed") into the order the kernel reads them,
// zero-padded to whole tiles, with alpha folded into A:
//
//   packed A, per block of kc along k: [m / mr panels][kc][mr]
//   packed B, per kc x nc block:       [nc / nr panels][kc][nr]
//
// A kc x nc block of B (256 x 512 floats: 512 KiB, L2-sized) is packed once
// and swept by every mr-row panel of A, which stays in L1 (6 KiB) during the
// sweep. Measured on bench/gemm_benchmark (1 core, n = 1024, GFLOP/s,
// AVX-512): 6x64 tiles 223-227, 8x48 221, 12x32 157, 14x32 153; kc 512
// instead of 256: same.
//
// bf16 products use the same blocking with bf16 panels (gemm_kernels.h):
// B's panels are computed in float32 as above and converted to pairs along
// k, A is packed for the kernel: pairs beside 6 rows for the AVX512-BF16
// 6 x 64 tile (VDPBF16PS), rows of 32 k for AMX's 32 x 32 tile (TDPBF16PS).
// Their blocks along k are 512 deep (the bytes of float32's 256; 512 against
// 256: 187 against 170 GFLOP/s). AVX512-BF16, 1 core, n = 1024 on an AMD
// EPYC (Zen 4): 187 GFLOP/s, 82% of the VDPBF16PS peak, against 96 GFLOP/s
// in float32.
//
// ---- Kernel paths -----------------------------------------------------------
//
// Each kernel path (tensor/cpu.h's Isa: generic, avx2, avx512, avx512_bf16,
// amx) is one GemmPath, like BLIS's context: its micro-kernel and tile, its
// blocking, how A is packed for it, and how each kind of product runs on it.
// PathOf builds them, ActivePath picks one per product; the code below reads
// their fields and never asks which path it is on.
// -----------------------------------------------------------------------------

using gemm_internal::Bf16MicroKernel;
using gemm_internal::kGemmMr;
using gemm_internal::MicroKernel;

struct GemmPath;

// Packs alpha * op(A) [m, k] whole for `path` (GemmLhs::Pack) into `out`, of
// RoundUp(m, path.mr) * RoundUp(k, path.k_unit) elements; rounded to bf16
// when `bf16`.
using PackLhsFn = void (*)(const GemmPath& path, bool trans, int64_t m,
                           int64_t k, const float* a, int64_t lda, float alpha,
                           bool bf16, void* out);
// C[m, n] = A * B + beta * C, A packed by the path's pack_lhs.
using GemmFn = void (*)(const GemmPath& path, const GemmLhs& a, int64_t n,
                        GemmRhs b, float beta, float* c, int64_t ldc,
                        const GemmEpilogue& epilogue);
// C[m, n] += A[m, k] * B^T (GemmNT once C is scaled), operands rounded to
// bf16 when `bf16`.
using GemmNtFn = void (*)(bool bf16, int64_t m, int64_t n, int64_t k,
                          const float* a, int64_t lda, GemmRhs b, float* c,
                          int64_t ldc);
// The BLAS-style Gemm straight from the stored operands.
using BlasFn = void (*)(bool trans_a, bool trans_b, int64_t m, int64_t n,
                        int64_t k, float alpha, const float* a, int64_t lda,
                        const float* b, int64_t ldb, float beta, float* c,
                        int64_t ldc);

struct GemmPath {
  Isa isa = Isa::kGeneric;
  // The precision of the kernel's products: kBfloat16 for the bf16 dot
  // products (VDPBF16PS, TDPBF16PS) on bf16 panels; the float32 kernels take
  // operands rounded to bf16 for bf16 products instead.
  MatmulPrecision computes_in = MatmulPrecision::kFloat32;
  // How GemmLhs holds A for the path.
  GemmLayout layout = GemmLayout::kPlain;
  // The micro-kernel, on float32 panels (`kernel`) or bf16 ones
  // (`bf16_kernel`); `enter` and `leave`, when not null, run on each thread
  // before and after its calls of it (AMX: the tile configuration). None on
  // the generic path, whose products are Eigen's.
  gemm_internal::MicroKernelFn kernel = nullptr;
  gemm_internal::Bf16MicroKernelFn bf16_kernel = nullptr;
  void (*enter)() = nullptr;
  void (*leave)() = nullptr;
  // The tile of C (rows, columns), and the unit k is padded to in the
  // panels (the generic path: Eigen's GEMM on A whole, about 16 columns).
  int64_t mr = 1, nr = 16, k_unit = 1;
  // Blocking: A and B are packed in blocks kc deep along k, B in kc x nc
  // blocks. kc is a multiple of k_unit, nc of nr.
  int64_t kc = 0, nc = 0;
  PackLhsFn pack_lhs = nullptr;
  GemmFn gemm = nullptr;
  GemmNtFn gemm_nt = nullptr;
  // Float32 products from unpacked operands, where the path has them.
  BlasFn blas = nullptr;
  // CopyStored's 16 x 16 transposes through registers; null: element by
  // element.
  Transpose16x16Fn transpose16x16 = nullptr;
};

// Bytes per element of A packed for `path`.
int64_t ElementBytes(const GemmPath& path) {
  return path.computes_in == MatmulPrecision::kBfloat16 ? 2 : 4;
}

// ---- Packing A --------------------------------------------------------------

// The generic path: A as [m, k], which Eigen's GEMM takes.
void PackPlain(const GemmPath&, bool trans, int64_t m, int64_t k,
               const float* a, int64_t lda, float alpha, bool bf16,
               void* data) {
  float* __restrict out = static_cast<float*>(data);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t p = 0; p < k; ++p) {
      out[i * k + p] = alpha * (trans ? a[p * lda + i] : a[i * lda + p]);
    }
  }
  if (bf16) RoundToBf16(out, m * k);
}

// Packs one panel of A for `path`: alpha * op(A)[i0 : i0 + rows, p0 : p0 +
// kc] (rows <= path.mr) into `out`, in the path's layout, zero-padded to
// path.mr rows and to a multiple of path.k_unit along k.
using PanelPacker = void (*)(const GemmPath& path, bool trans, const float* a,
                             int64_t lda, float alpha, bool bf16, int64_t i0,
                             int64_t rows, int64_t p0, int64_t kc, void* out);

// The paths with panels: A in blocks of path.kc along k, each cut into
// panels of path.mr rows.
template <PanelPacker kPackPanel>
void PackPanels(const GemmPath& path, bool trans, int64_t m, int64_t k,
                const float* a, int64_t lda, float alpha, bool bf16,
                void* data) {
  const int64_t mr = path.mr, kc_block = path.kc, k_unit = path.k_unit;
  const int64_t m_pad = RoundUp(m, mr), element_bytes = ElementBytes(path);
  char* const base = static_cast<char*>(data);
  // Large operands (a layer's weights, packed outside the batch loop) are
  // packed by all threads, panel by panel.
#pragma omp parallel for schedule(static) if (m * k >= (1 << 16) && \
                                              !omp_in_parallel())
  for (int64_t i0 = 0; i0 < m_pad; i0 += mr) {
    for (int64_t p0 = 0; p0 < k; p0 += kc_block) {
      const int64_t kc = std::min(kc_block, k - p0);
      const int64_t rows = std::min<int64_t>(mr, m - i0);
      // Blocks of A before this one hold kc_block (a multiple of k_unit) of
      // k each.
      kPackPanel(
          path, trans, a, lda, alpha, bf16, i0, rows, p0, kc,
          base + (p0 * m_pad + i0 * RoundUp(kc, k_unit)) * element_bytes);
    }
  }
}

// The float32 panel [kc][kGemmMr] of alpha * op(A), rows past `rows` zero.
void FillFloatPanel(bool trans, const float* a, int64_t lda, float alpha,
                    int64_t i0, int64_t rows, int64_t p0, int64_t kc,
                    float* __restrict panel) {
  if (rows < kGemmMr) std::fill(panel, panel + kc * kGemmMr, 0.0f);
  if (trans) {  // row p of the panel: A[p0 + p, i0 : i0 + rows]
    for (int64_t p = 0; p < kc; ++p) {
      const float* __restrict src = a + (p0 + p) * lda + i0;
      for (int64_t i = 0; i < rows; ++i)
        panel[p * kGemmMr + i] = alpha * src[i];
    }
  } else {  // column i of the panel: A[i0 + i, p0 : p0 + kc]
    for (int64_t i = 0; i < rows; ++i) {
      const float* __restrict src = a + (i0 + i) * lda + p0;
      for (int64_t p = 0; p < kc; ++p) {
        panel[p * kGemmMr + i] = alpha * src[p];
      }
    }
  }
}

// AVX2, AVX-512: [kc][kGemmMr] floats, rounded to bf16 in bf16 precision.
void PackFloatPanel(const GemmPath&, bool trans, const float* a, int64_t lda,
                    float alpha, bool bf16, int64_t i0, int64_t rows,
                    int64_t p0, int64_t kc, void* out) {
  float* panel = static_cast<float*>(out);
  FillFloatPanel(trans, a, lda, alpha, i0, rows, p0, kc, panel);
  if (bf16) RoundToBf16(panel, kc * kGemmMr);
}

// AVX512-BF16: bf16 pairs along k beside kGemmMr rows [ceil(kc / 2)][6][2],
// converted from a float32 panel built first.
void PackBf16PairPanel(const GemmPath&, bool trans, const float* a, int64_t lda,
                       float alpha, bool, int64_t i0, int64_t rows, int64_t p0,
                       int64_t kc, void* out) {
  float* panel = ThreadBuffer<float>(kLhsPanel, kc * kGemmMr);
  FillFloatPanel(trans, a, lda, alpha, i0, rows, p0, kc, panel);
  gemm_internal::Avx512Bf16PackPairs(panel, kc, kGemmMr,
                                     static_cast<uint16_t*>(out));
}

// AMX: [mr][kc_pad] bf16, rows of A (k contiguous), through a float32 block.
void PackAmxPanel(const GemmPath& path, bool trans, const float* a, int64_t lda,
                  float alpha, bool, int64_t i0, int64_t rows, int64_t p0,
                  int64_t kc, void* out) {
  const int64_t mr = path.mr, kc_pad = RoundUp(kc, path.k_unit);
  float* __restrict block = ThreadBuffer<float>(kLhsPanel, mr * kc);
  if (trans) {
    for (int64_t p = 0; p < kc; ++p) {
      const float* __restrict src = a + (p0 + p) * lda + i0;
      for (int64_t i = 0; i < rows; ++i) block[i * kc + p] = alpha * src[i];
    }
  } else {
    for (int64_t i = 0; i < rows; ++i) {
      const float* __restrict src = a + (i0 + i) * lda + p0;
      for (int64_t p = 0; p < kc; ++p) block[i * kc + p] = alpha * src[p];
    }
  }
  uint16_t* panel = static_cast<uint16_t*>(out);
  for (int64_t i = 0; i < rows; ++i) {
    gemm_internal::Avx512Bf16Convert(block + i * kc, kc, kc_pad,
                                     panel + i * kc_pad);
  }
  std::fill(panel + rows * kc_pad, panel + mr * kc_pad, uint16_t{0});
}

// ---- The epilogue ------------------------------------------------------------

// Applies `e` to C[i0 : i0 + rows, j0 : j0 + cols].
void ApplyEpilogue(const GemmEpilogue& e, int64_t i0, int64_t rows, int64_t j0,
                   int64_t cols, float* c, int64_t ldc) {
  for (int64_t i = i0; i < i0 + rows; ++i) {
    float* __restrict row = c + i * ldc + j0;
    const float bias = e.row_bias != nullptr ? e.row_bias[i] : 0.0f;
    if (e.addend != nullptr) {
      const float* __restrict add = e.addend + i * e.ld_addend + j0;
      for (int64_t j = 0; j < cols; ++j) row[j] = row[j] + bias + add[j];
    } else if (e.row_bias != nullptr) {
      for (int64_t j = 0; j < cols; ++j) row[j] += bias;
    }
    if (e.relu) {
      // v < 0 ? 0 : v keeps NaN, as PyTorch's relu does.
      for (int64_t j = 0; j < cols; ++j) row[j] = row[j] < 0.0f ? 0.0f : row[j];
    }
  }
  if (e.store.has_value()) (*e.store)(i0, rows, j0, cols, c, ldc);
}

// ---- The packed GEMM --------------------------------------------------------

// C[i0 : i1, j_lo : j_hi] (+)= A[i0 : i1, :] * B[:, j_lo : j_hi] on one
// thread; i0 is a multiple of the path's mr. Without `overwrite` the kernel
// adds to C. Each tile gets the epilogue after its last block along k. The float32 kernels (Element float) take B's panels as `b`
// writes them (rounded to bf16 in bf16 precision), the bf16 ones (Element
// uint16_t) as pairs converted from them, k padded with zeros to the
// kernel's unit.
template <typename Element>
void PackedGemm(const GemmPath& path, const GemmLhs& a, int64_t i0, int64_t i1,
                GemmRhs b, int64_t j_lo, int64_t j_hi, bool overwrite, float* c,
                int64_t ldc, const GemmEpilogue& epilogue) {
  constexpr bool kPairs = std::is_same_v<Element, uint16_t>;
  const int64_t k_unit = kPairs ? path.k_unit : 1;
  const bool round = !kPairs && a.precision() == MatmulPrecision::kBfloat16;
  const int64_t nr_tile = path.nr, mr_tile = path.mr;
  const int64_t kc_block = path.kc, nc_block = path.nc;
  const gemm_internal::MicroKernelFn run = path.kernel;
  const gemm_internal::Bf16MicroKernelFn run_bf16 = path.bf16_kernel;
  const int64_t k = a.k(), m_pad = RoundUp(a.m(), mr_tile);
  const int64_t kc_max = RoundUp(std::min(kc_block, k), k_unit);
  Element* pb = ThreadBuffer<Element>(
      kRhsBlock, kc_max * std::min(nc_block, RoundUp(j_hi - j_lo, nr_tile)));
  float* scratch =
      kPairs ? ThreadBuffer<float>(kRhsPanel, kc_max * nr_tile) : nullptr;
  if (path.enter != nullptr) path.enter();
  for (int64_t j0 = j_lo; j0 < j_hi; j0 += nc_block) {
    const int64_t nc = std::min(nc_block, j_hi - j0);
    for (int64_t p0 = 0; p0 < k; p0 += kc_block) {
      const int64_t kc = std::min(kc_block, k - p0);
      const int64_t kc_pad = RoundUp(kc, k_unit);  // per panel column
      const bool accumulate = !(overwrite && p0 == 0);
      const bool last = p0 + kc >= k && !epilogue.empty();
      for (int64_t jp = 0; jp < nc; jp += nr_tile) {
        const int64_t cols = std::min<int64_t>(nr_tile, nc - jp);
        float* panel;
        if constexpr (kPairs) {
          panel = scratch;
        } else {
          panel = pb + jp * kc;
        }
        b(p0, kc, j0 + jp, cols, panel, nr_tile);
        if (round) RoundToBf16(panel, kc * nr_tile);
        if (cols < nr_tile) {
          for (int64_t p = 0; p < kc; ++p) {
            std::fill(panel + p * nr_tile + cols, panel + (p + 1) * nr_tile,
                      0.0f);
          }
        }
        if constexpr (kPairs) {
          std::fill(panel + kc * nr_tile, panel + kc_pad * nr_tile, 0.0f);
          gemm_internal::Avx512Bf16PackPairs(panel, kc_pad, nr_tile,
                                             pb + jp * kc_pad);
        }
      }
      // Blocks of A before this one hold kc_block (a multiple of k_unit)
      // of k each.
      const Element* pa;
      if constexpr (kPairs) {
        pa = a.bf16() + p0 * m_pad;
      } else {
        pa = a.floats() + p0 * m_pad;
      }
      for (int64_t ir = i0; ir < i1; ir += mr_tile) {
        const int mr = static_cast<int>(std::min<int64_t>(mr_tile, i1 - ir));
        for (int64_t jr = 0; jr < nc; jr += nr_tile) {
          const int nr = static_cast<int>(std::min<int64_t>(nr_tile, nc - jr));
          if constexpr (kPairs) {
            run_bf16(kc_pad, pa + ir * kc_pad, pb + jr * kc_pad,
                     c + ir * ldc + j0 + jr, ldc, mr, nr, accumulate);
          } else {
            run(kc_pad, pa + ir * kc_pad, pb + jr * kc_pad,
                c + ir * ldc + j0 + jr, ldc, mr, nr, accumulate);
          }
          if (last) ApplyEpilogue(epilogue, ir, mr, j0 + jr, nr, c, ldc);
        }
      }
    }
  }
  if (path.leave != nullptr) path.leave();
}

// Below this many multiply-adds a second thread costs more than it saves.
constexpr int64_t kMinParallelMacs = 1 << 20;

template <typename Element>
void PackedGemmParallel(const GemmPath& path, const GemmLhs& a, int64_t n,
                        GemmRhs b, float beta, float* c, int64_t ldc,
                        const GemmEpilogue& epilogue) {
  const int64_t m = a.m();
  const bool overwrite = beta == 0.0f;
  if (!overwrite) ScaleC(m, n, beta, c, ldc);
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (m * n * a.k() < kMinParallelMacs) threads = 1;
  if (threads == 1) {
    PackedGemm<Element>(path, a, 0, m, b, 0, n, overwrite, c, ldc, epilogue);
    return;
  }
  // Each thread computes a slab of C in whole tiles: columns when C is wide
  // (sharing the packed A), else rows (each packing all of B).
  const bool split_n = n >= m;
  const int64_t unit = split_n ? path.nr : path.mr;
  const int64_t extent = split_n ? n : m;
  const int64_t tiles = CeilDiv(extent, unit);
  threads = static_cast<int>(std::min<int64_t>(threads, tiles));
#pragma omp parallel num_threads(threads)
  {
    const auto [lo, hi] =
        ThreadSlab(extent, unit, omp_get_thread_num(), threads);
    if (hi > lo) {
      if (split_n) {
        PackedGemm<Element>(path, a, 0, m, b, lo, hi, overwrite, c, ldc,
                            epilogue);
      } else {
        PackedGemm<Element>(path, a, lo, hi, b, 0, n, overwrite, c, ldc,
                            epilogue);
      }
    }
  }
}

// ---- GemmNT: dot products along k (AVX-512) ---------------------------------
//
// A tile is kNtM rows of A times kNtRows rows of B: 24 zmm accumulators of 16
// partial sums along k each (24 FMAs per 10 loads), summed once per block of
// kNtKc. B is computed into row blocks of kNtNc x kNtKc floats (512 KiB, L2);
// rows of A are read in place. In bf16 on AVX512-BF16 (and AMX CPUs, which
// have it), A's rows are converted once and each block of B as it is
// computed, and every VDPBF16PS sums 32 products along k.

using gemm_internal::kNtM;     // rows of A (and C) per tile
using gemm_internal::kNtRows;  // rows of B (columns of C) per tile
constexpr int64_t kNtKc = 1024;
constexpr int64_t kNtNc = 128;

// Rows [i0, i1) of C += A * B^T on one thread (i0 a multiple of kNtM), with
// A float32 (B rounded to bf16 when `round`) or bf16 (B converted to it),
// zero past k in whole vectors of its elements.
template <typename Element>
void NtGemm(int64_t i0, int64_t i1, int64_t n, int64_t k, const Element* a,
            int64_t lda, GemmRhs b, bool round, float* c, int64_t ldc) {
  constexpr bool kBf16 = std::is_same_v<Element, uint16_t>;
  constexpr int64_t kLanes = 64 / sizeof(Element);  // elements per zmm
  const int64_t rows = RoundUp(std::min(n, kNtNc), kNtRows);
  float* pf =
      ThreadBuffer<float>(kRhsBlock, rows * RoundUp(std::min(k, kNtKc), 16));
  Element* pb;
  if constexpr (kBf16) {
    pb = ThreadBuffer<Element>(kRhsPanel,
                               rows * RoundUp(std::min(k, kNtKc), kLanes));
  } else {
    pb = pf;  // float32 B is used as computed
  }
  for (int64_t p0 = 0; p0 < k; p0 += kNtKc) {
    const int64_t kp = std::min(kNtKc, k - p0), ldf = RoundUp(kp, 16);
    const int64_t ldb = RoundUp(kp, kLanes);
    for (int64_t j0 = 0; j0 < n; j0 += kNtNc) {
      const int64_t nb = std::min(kNtNc, n - j0);
      b(j0, nb, p0, kp, pf, ldf);
      for (int64_t j = 0; j < nb; ++j) {
        if constexpr (kBf16) {
          gemm_internal::Avx512Bf16Convert(pf + j * ldf, kp, ldb, pb + j * ldb);
        } else {
          if (round) RoundToBf16(pf + j * ldf, kp);
          std::fill(pf + j * ldf + kp, pf + (j + 1) * ldf, 0.0f);
        }
      }
      std::fill(pb + nb * ldb, pb + RoundUp(nb, kNtRows) * ldb, Element{0});
      for (int64_t ir = i0; ir < i1; ir += kNtM) {
        const int mr = static_cast<int>(std::min<int64_t>(kNtM, i1 - ir));
        for (int64_t jr = 0; jr < nb; jr += kNtRows) {
          const int nr = static_cast<int>(std::min<int64_t>(kNtRows, nb - jr));
          if constexpr (kBf16) {
            gemm_internal::Avx512Bf16NtKernel(
                ldb, a + ir * lda + p0, lda, pb + jr * ldb, ldb,
                c + ir * ldc + j0 + jr, ldc, mr, nr);
          } else {
            gemm_internal::Avx512NtKernel(kp, a + ir * lda + p0, lda,
                                          pb + jr * ldb, ldb,
                                          c + ir * ldc + j0 + jr, ldc, mr, nr);
          }
        }
      }
    }
  }
}

// Rows of C split between the threads in whole tiles, each computing all of
// B: C += A * B^T.
template <typename Element>
void NtGemmParallel(int64_t m, int64_t n, int64_t k, const Element* a,
                    int64_t lda, GemmRhs b, bool round, float* c, int64_t ldc) {
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (m * n * k < kMinParallelMacs) threads = 1;
  const int64_t tiles = CeilDiv(m, kNtM);
  threads = static_cast<int>(std::min<int64_t>(threads, tiles));
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const auto [lo, hi] = ThreadSlab(m, kNtM, omp_get_thread_num(), threads);
    if (hi > lo) NtGemm(lo, hi, n, k, a, lda, b, round, c, ldc);
  }
}

// ---- Eigen's GEMM on mapped buffers (CPUs without AVX2) ---------------------

using RowMajor =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap =
    Eigen::Map<const RowMajor, Eigen::Unaligned, Eigen::OuterStride<> >;
using Map = Eigen::Map<RowMajor, Eigen::Unaligned, Eigen::OuterStride<> >;

template <typename A, typename B>
void Accumulate(const A& op_a, const B& op_b, float alpha, float beta, Map& c) {
  if (beta == 0.0f) {
    c.noalias() = alpha * (op_a * op_b);
  } else {
    if (beta != 1.0f) c *= beta;
    c.noalias() += alpha * (op_a * op_b);
  }
}

void EigenGemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
               float alpha, const float* a, int64_t lda, const float* b,
               int64_t ldb, float beta, float* c, int64_t ldc) {
  Map cm(c, m, n, Eigen::OuterStride<>(ldc));
  // A stored as [m, k] (or [k, m] when transposed); likewise B.
  ConstMap am(a, trans_a ? k : m, trans_a ? m : k, Eigen::OuterStride<>(lda));
  ConstMap bm(b, trans_b ? n : k, trans_b ? k : n, Eigen::OuterStride<>(ldb));
  if (!trans_a && !trans_b) Accumulate(am, bm, alpha, beta, cm);
  if (!trans_a && trans_b) Accumulate(am, bm.transpose(), alpha, beta, cm);
  if (trans_a && !trans_b) Accumulate(am.transpose(), bm, alpha, beta, cm);
  if (trans_a && trans_b) {
    Accumulate(am.transpose(), bm.transpose(), alpha, beta, cm);
  }
}

// The matrix `b` describes, [rows, cols] row-major, in a buffer of this
// thread's; rounded to bf16 when `bf16`.
const float* Materialize(GemmRhs b, int64_t rows, int64_t cols, bool bf16) {
  thread_local std::vector<float> m;
  m.resize(static_cast<size_t>(rows * cols));
  b(0, rows, 0, cols, m.data(), cols);
  if (bf16) RoundToBf16(m.data(), rows * cols);
  return m.data();
}

// The generic path's product with a packed (plain) A.
void EigenPackedGemm(const GemmPath&, const GemmLhs& a, int64_t n, GemmRhs b,
                     float beta, float* c, int64_t ldc,
                     const GemmEpilogue& epilogue) {
  const int64_t m = a.m(), k = a.k();
  EigenGemm(false, false, m, n, k, 1.0f, a.floats(), k,
            Materialize(b, k, n, a.precision() == MatmulPrecision::kBfloat16),
            n, beta, c, ldc);
  if (!epilogue.empty()) ApplyEpilogue(epilogue, 0, m, 0, n, c, ldc);
}

// ---- GemmNT on each path ----------------------------------------------------

// A [m, k] (row stride *lda) rounded to bf16 in a buffer of this thread's;
// *lda becomes k.
const float* RoundedRows(int64_t m, int64_t k, const float* a, int64_t* lda) {
  float* rounded = ThreadBuffer<float>(kLhsRows, m * k);
  for (int64_t i = 0; i < m; ++i) {
    std::copy(a + i * *lda, a + i * *lda + k, rounded + i * k);
  }
  RoundToBf16(rounded, m * k);
  *lda = k;
  return rounded;
}

// Generic: Eigen's GEMM on A and B materialized.
void EigenGemmNT(bool bf16, int64_t m, int64_t n, int64_t k, const float* a,
                 int64_t lda, GemmRhs b, float* c, int64_t ldc) {
  if (bf16) a = RoundedRows(m, k, a, &lda);
  EigenGemm(false, true, m, n, k, 1.0f, a, lda, Materialize(b, n, k, bf16), k,
            1.0f, c, ldc);
}

// AVX2: the packed GEMM with B^T's panels transposed from B's rows as they
// are computed (the AVX2 tile is 16 columns wide). For narrower C Eigen's is
// faster (m 6, n 25, k 784: 18 GFLOP/s against 7 on an AMD EPYC).
void Avx2GemmNT(bool bf16, int64_t m, int64_t n, int64_t k, const float* a,
                int64_t lda, GemmRhs b, float* c, int64_t ldc) {
  if (n < 32) {
    EigenGemmNT(bf16, m, n, k, a, lda, b, c, ldc);
    return;
  }
  thread_local GemmLhs lhs;
  lhs.Pack(false, m, k, a, lda);  // rounded to bf16 in bf16 precision
  Gemm(
      lhs, n,
      [&](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst,
          int64_t ld) {
        float* rows = ThreadBuffer<float>(kLhsRows, nc * kc);
        b(j0, nc, p0, kc, rows, kc);
        for (int64_t p = 0; p < kc; ++p) {
          for (int64_t j = 0; j < nc; ++j) dst[p * ld + j] = rows[j * kc + p];
        }
      },
      1.0f, c, ldc);
}

// AVX-512: dot products of float32 rows (rounded to bf16 in bf16 precision).
void Avx512GemmNT(bool bf16, int64_t m, int64_t n, int64_t k, const float* a,
                  int64_t lda, GemmRhs b, float* c, int64_t ldc) {
  if (bf16) a = RoundedRows(m, k, a, &lda);
  NtGemmParallel(m, n, k, a, lda, b, bf16, c, ldc);
}

// AVX512-BF16 and AMX: in bf16, A's rows converted once (VDPBF16PS).
void Bf16GemmNT(bool, int64_t m, int64_t n, int64_t k, const float* a,
                int64_t lda, GemmRhs b, float* c, int64_t ldc) {
  const int64_t lda16 = RoundUp(k, 32);
  uint16_t* a16 = ThreadBuffer<uint16_t>(kLhsRows, m * lda16);
  for (int64_t i = 0; i < m; ++i) {
    gemm_internal::Avx512Bf16Convert(a + i * lda, k, lda16, a16 + i * lda16);
  }
  NtGemmParallel(m, n, k, a16, lda16, b, false, c, ldc);
}

// ---- The paths' descriptors -------------------------------------------------

// Blocks along k: 256 floats, or 512 bf16 (the same bytes; a multiple of
// every bf16 kernel's k_unit). Blocks of B's columns: 512, a multiple of
// every kernel's nr.
constexpr int64_t kKcFloat = 256;
constexpr int64_t kKcBf16 = 512;
constexpr int64_t kNc = 512;

// A path on a float32 micro-kernel.
GemmPath FloatPath(Isa isa, const MicroKernel& kernel) {
  GemmPath p;
  p.isa = isa;
  p.computes_in = MatmulPrecision::kFloat32;
  p.layout = GemmLayout::kPanels;
  p.kernel = kernel.run;
  p.mr = kernel.mr;
  p.nr = kernel.nr;
  p.k_unit = 1;
  p.kc = kKcFloat;
  p.nc = kNc;
  p.pack_lhs = &PackPanels<&PackFloatPanel>;
  p.gemm = &PackedGemmParallel<float>;
  return p;
}

// A path on a bf16 micro-kernel, A packed by `pack_panel`.
GemmPath Bf16Path(Isa isa, GemmLayout layout, const Bf16MicroKernel& kernel,
                  PackLhsFn pack_lhs) {
  GemmPath p;
  p.isa = isa;
  p.computes_in = MatmulPrecision::kBfloat16;
  p.layout = layout;
  p.bf16_kernel = kernel.run;
  p.enter = kernel.enter;
  p.leave = kernel.leave;
  p.mr = kernel.mr;
  p.nr = kernel.nr;
  p.k_unit = kernel.k_unit;
  p.kc = kKcBf16;
  p.nc = kNc;
  p.pack_lhs = pack_lhs;
  p.gemm = &PackedGemmParallel<uint16_t>;
  p.gemm_nt = &Bf16GemmNT;
  p.transpose16x16 = &gemm_internal::Avx512Transpose16x16;
  return p;
}

GemmPath GenericPath() {
  GemmPath p;
  p.isa = Isa::kGeneric;
  p.layout = GemmLayout::kPlain;
  p.pack_lhs = &PackPlain;
  p.gemm = &EigenPackedGemm;
  p.gemm_nt = &EigenGemmNT;
  p.blas = &EigenGemm;
  return p;
}

GemmPath Avx2Path() {
  GemmPath p = FloatPath(Isa::kAvx2, gemm_internal::Avx2MicroKernel());
  p.gemm_nt = &Avx2GemmNT;
  return p;
}

GemmPath Avx512Path() {
  GemmPath p = FloatPath(Isa::kAvx512, gemm_internal::Avx512MicroKernel());
  p.gemm_nt = &Avx512GemmNT;
  p.transpose16x16 = &gemm_internal::Avx512Transpose16x16;
  return p;
}

GemmPath Avx512Bf16Path() {
  return Bf16Path(Isa::kAvx512Bf16, GemmLayout::kBf16Panels,
                  gemm_internal::Avx512Bf16MicroKernel(),
                  &PackPanels<&PackBf16PairPanel>);
}

GemmPath AmxPath() {
  return Bf16Path(Isa::kAmx, GemmLayout::kAmxPanels,
                  AmxEmulated() ? gemm_internal::AmxEmulatedMicroKernel()
                                : gemm_internal::AmxMicroKernel(),
                  &PackPanels<&PackAmxPanel>);
}

// The descriptor of `isa`'s path, built on first use: its kernels are
// compiled for that ISA, which the CPU may lack where it is not active.
const GemmPath& PathOf(Isa isa) {
  switch (isa) {
    case Isa::kGeneric: {
      static const GemmPath path = GenericPath();
      return path;
    }
    case Isa::kAvx2: {
      static const GemmPath path = Avx2Path();
      return path;
    }
    case Isa::kAvx512: {
      static const GemmPath path = Avx512Path();
      return path;
    }
    case Isa::kAvx512Bf16: {
      static const GemmPath path = Avx512Bf16Path();
      return path;
    }
    case Isa::kAmx:
      break;
  }
  static const GemmPath path = AmxPath();
  return path;
}

// The path for products in `precision`: bf16 ones run on AMX (once its
// kernel has passed the self-check) or VDPBF16PS where the CPU has them, on
// the float32 kernels (operands rounded) elsewhere; float32 ones on the best
// float32 kernel. The self-check, a GEMM of its own, may run here: callers
// ask before they use this thread's buffers or a GemmLhs.
const GemmPath& ActivePath(MatmulPrecision precision) {
  Isa isa = ActiveIsa();
  if (precision == MatmulPrecision::kFloat32) {
    return PathOf(std::min(isa, Isa::kAvx512));
  }
  if (isa == Isa::kAmx && !AmxPassed()) isa = AmxFallback();
  return PathOf(isa);
}

// This thread's products: their precision (the GEMM's one read of the
// thread's setting; ParallelFor gives its workers the caller's) and the path
// that computes them.
struct Products {
  MatmulPrecision precision;
  const GemmPath* path;

  bool bf16() const { return precision == MatmulPrecision::kBfloat16; }
};

Products ThisThreadsProducts() {
  const MatmulPrecision precision = GetMatmulPrecision();
  return {precision, &ActivePath(precision)};
}

thread_local MatmulPrecision current_precision = MatmulPrecision::kFloat32;

}  // namespace

MatmulPrecision GetMatmulPrecision() { return current_precision; }

ScopedMatmulPrecision::ScopedMatmulPrecision(MatmulPrecision precision)
    : previous_(current_precision) {
  current_precision = precision;
}

ScopedMatmulPrecision::~ScopedMatmulPrecision() {
  current_precision = previous_;
}

int64_t GemmTileColumns() { return ThisThreadsProducts().path->nr; }

void GemmLhs::Free::operator()(void* p) const { std::free(p); }

void GemmLhs::Pack(bool trans, int64_t m, int64_t k, const float* a,
                   int64_t lda, float alpha) {
  const Products products = ThisThreadsProducts();
  const GemmPath& path = *products.path;
  m_ = m;
  k_ = k;
  precision_ = products.precision;
  layout_ = path.layout;
  const int64_t bytes =
      RoundUp(m, path.mr) * RoundUp(k, path.k_unit) * ElementBytes(path);
  if (capacity_ < bytes) {
    data_.reset(AlignedBytes(bytes));
    capacity_ = bytes;
  }
  path.pack_lhs(path, trans, m, k, a, lda, alpha, products.bf16(), data_.get());
}

const GemmLhs& PackWeights(const Tensor& w, int64_t m, int64_t k,
                           GemmLhs& scratch) {
  CHECK(w.dtype() == DType::kFloat32 && w.is_contiguous() && w.numel() == m * k)
      << "PackWeights: weights " << w.shape() << " (" << DTypeName(w.dtype())
      << ") are not a contiguous float32 [" << m << ", " << k << "]";
  FrozenForms* const forms = w.frozen_forms();
  if (forms == nullptr) {
    scratch.Pack(false, m, k, w.data(), k);
    return scratch;
  }
  const Products products = ThisThreadsProducts();
  const std::string key =
      absl::StrCat("GemmLhs ", m, "x", k, " at ", w.offset(), ", precision ",
                   static_cast<int>(products.precision), ", layout ",
                   static_cast<int>(products.path->layout));
  return forms->Get<GemmLhs>(key, [&] {
    auto packed = std::make_unique<GemmLhs>();
    packed->Pack(false, m, k, w.data(), k);
    return packed;
  });
}

void Gemm(const GemmLhs& a, int64_t n, GemmRhs b, float beta, float* c,
          int64_t ldc, const GemmEpilogue& epilogue) {
  const int64_t m = a.m(), k = a.k();
  if (m == 0 || n == 0) return;
  if (k == 0) {
    ScaleC(m, n, beta, c, ldc);
    if (!epilogue.empty()) ApplyEpilogue(epilogue, 0, m, 0, n, c, ldc);
    return;
  }
  const GemmPath& path = ActivePath(a.precision());
  CHECK(a.layout() == path.layout)
      << "GemmLhs packed for another kernel path than " << IsaName(path.isa)
      << "'s: pack it again after SetActiveIsa";
  path.gemm(path, a, n, b, beta, c, ldc, epilogue);
}

void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
          float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == 0.0f) {
    ScaleC(m, n, beta, c, ldc);
    return;
  }
  const Products products = ThisThreadsProducts();
  const GemmPath& path = *products.path;
  if (path.blas != nullptr && !products.bf16()) {
    path.blas(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // Packed (or, for Eigen in bf16, copied and rounded) on the way.
  thread_local GemmLhs lhs;
  lhs.Pack(trans_a, m, k, a, lda, alpha);
  Gemm(
      lhs, n,
      [&](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst,
          int64_t ld) {
        CopyStored(trans_b, b, ldb, p0, kc, j0, nc, dst, ld,
                   path.transpose16x16);
      },
      beta, c, ldc);
}

void GemmNT(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
            GemmRhs b, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  ScaleC(m, n, beta, c, ldc);
  if (k == 0) return;
  const Products products = ThisThreadsProducts();
  products.path->gemm_nt(products.bf16(), m, n, k, a, lda, b, c, ldc);
}

}  // namespace dive
