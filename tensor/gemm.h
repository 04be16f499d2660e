// File: tensor/gemm.h
// -----------------------------------------------------------------------------
//
// Single-precision general matrix multiply on row-major buffers, BLAS style:
//
//   C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C
//
// where op(X) is X or its transpose, and lda/ldb/ldc are row strides in
// elements. Every matrix product of the framework (Linear, convolution, their
// gradients) goes through this file, so its speed is the framework's speed;
// `bench/gemm_benchmark` measures it against the FMA peak and OpenBLAS.
//
// The product is our own packed GEMM (gemm.cc explains it) with the
// micro-kernel of the CPU's instruction set, chosen at run time (AVX-512 or
// AVX2; tensor/cpu.h), or Eigen's on CPUs with neither; bf16 products
// (MatmulPrecision below) run on AMX (once its kernel has passed a
// self-check: AmxSelfCheck below) or AVX512-BF16 where the CPU has them.
// Besides the BLAS-style call, three entry points serve convolution, which
// multiplies one weight matrix by many images:
//
//   * GemmLhs packs the left operand once for many products;
//   * GemmRhs lets the right operand be computed block by block (im2col
//     written straight into the packed panels, never stored whole);
//   * GemmNT multiplies by a transposed right operand that is computed by
//     rows (the weight gradient: dy times im2col transposed).
//
// Example (C = A * B^T for A [4, 3], B [5, 3]):
//
//   dive::Gemm(false, true, 4, 5, 3, 1.0f, a, 3, b, 3, 0.0f, c, 5);

#ifndef TENSOR_GEMM_H_
#define TENSOR_GEMM_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "tensor/tensor.h"

namespace dive {

// The precision of the products in every GEMM of this thread:
//   kFloat32   float32 operands (the default);
//   kBfloat16  operands rounded to bf16 (tensor/bf16.h), products and sums
//              in float32: the semantics of the matrix engines' bf16 dot
//              products, run on them where the CPU has AMX (TDPBF16PS) or
//              AVX512-BF16 (VDPBF16PS: twice the multiply-adds of an FMA per
//              instruction, half the bytes per operand), and computed with
//              the float32 kernels elsewhere (GemmNT uses VDPBF16PS on AMX
//              CPUs too).
//              The result and C stay float32.
// Mixed-precision training sets it around a step, as PyTorch's autocast
// does for convolution and Linear: everything else (batch norm, softmax,
// the loss, the optimizer) never goes through the GEMM and stays float32.
enum class MatmulPrecision { kFloat32, kBfloat16 };

MatmulPrecision GetMatmulPrecision();

// Sets this thread's precision for its lifetime, then restores the previous
// one. OpenMP workers do not inherit it: the kernels of //tensor run every
// parallel region whose threads may call the GEMM through ParallelFor
// (tensor/parallel.h), which sets it in each of them (as PyTorch's
// parallel_for carries autocast's state into its workers). The GEMM's own
// threads take it from the GemmLhs or as an argument.
//
// A training step in bf16:
//
//   {
//     dive::ScopedMatmulPrecision bf16(dive::MatmulPrecision::kBfloat16);
//     loss = Loss(model(x), y);
//     loss.Backward();
//   }
class ScopedMatmulPrecision {
 public:
  explicit ScopedMatmulPrecision(MatmulPrecision precision);
  ~ScopedMatmulPrecision();
  ScopedMatmulPrecision(const ScopedMatmulPrecision&) = delete;
  ScopedMatmulPrecision& operator=(const ScopedMatmulPrecision&) = delete;

 private:
  const MatmulPrecision previous_;
};

void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
          float beta, float* c, int64_t ldc);

// The GEMM computes C in tiles this many columns wide: callers free to choose
// n (convolution, batching images) waste least with multiples of it.
int64_t GemmTileColumns();

// A matrix M given as a function of its blocks: fill(r0, rn, c0, cn, dst,
// ld) must write M[r0 + r, c0 + c] to dst[r * ld + c] for r < rn, c < cn.
// It is called for disjoint blocks, possibly from several threads at once.
// M is B [k, n] for Gemm, B [n, k] (B transposed) for GemmNT.
using GemmRhs = absl::FunctionRef<void(int64_t r0, int64_t rn, int64_t c0,
                                       int64_t cn, float* dst, int64_t ld)>;

// How a GemmLhs holds A: decided when it is packed, by the active kernel path
// (tensor/cpu.h) and the thread's precision.
enum class GemmLayout {
  kPlain,       // float32 [m, k], for Eigen's GEMM (CPUs without AVX2)
  kPanels,      // float32 panels for the AVX2 or AVX-512 micro-kernel
  kBf16Panels,  // bf16 panels for the AVX512-BF16 micro-kernel
  kAmxPanels,   // bf16 panels for the AMX micro-kernel
};

// alpha * op(A) [m, k], packed for the kernel. Pack() reuses the buffer, so a
// GemmLhs kept across calls allocates nothing once it is large enough.
class GemmLhs {
 public:
  // A is stored [m, k] with row stride lda, or [k, m] when `trans`.
  void Pack(bool trans, int64_t m, int64_t k, const float* a, int64_t lda,
            float alpha = 1.0f);

  int64_t m() const { return m_; }
  int64_t k() const { return k_; }
  GemmLayout layout() const { return layout_; }
  // The thread's precision when packed (bf16: A is rounded to it, and so is
  // B in every product with it).
  MatmulPrecision precision() const { return precision_; }
  // The packed matrix: floats (kPlain, kPanels) or bf16 bits (the others).
  const float* floats() const { return static_cast<const float*>(data_.get()); }
  const uint16_t* bf16() const {
    return static_cast<const uint16_t*>(data_.get());
  }

 private:
  struct Free {
    void operator()(void* p) const;
  };
  int64_t m_ = 0, k_ = 0, capacity_ = 0;  // capacity in bytes
  GemmLayout layout_ = GemmLayout::kPlain;
  MatmulPrecision precision_ = MatmulPrecision::kFloat32;
  std::unique_ptr<void, Free> data_;
};

// PackWeights()
//
// The float32 weights w, contiguous and read as A [m, k] (a layer's
// [out, in] matrix), packed for this thread's precision and kernel path:
// into `scratch` at each call, or, where w is frozen (Tensor::Frozen), once,
// kept with w for every later call in the same precision and path.
const GemmLhs& PackWeights(const Tensor& w, int64_t m, int64_t k,
                           GemmLhs& scratch);

// GemmEpilogue
//
// What a GEMM does to each tile of C once the tile's sum is complete, while
// it is still in L1 (so the caller's separate pass over C, out to memory and
// back, disappears): per element,
//
//   C[i, j] = act(C[i, j] + row_bias[i] + addend[i * ld_addend + j])
//
// with act ReLU (max(v, 0), NaN kept) when `relu`, else the identity.
// Convolution uses it for its bias, a residual added to its output and the
// ReLU after it (tensor/conv.h's Conv2dEpilogue).
//
// `store`, when set, is called after that for each finished tile, with the
// tile C[i0 : i0 + rows, j0 : j0 + cols] as it lies in C (element (i, j) at
// c[i * ldc + j]), on the thread that computed it: for a caller whose C is
// only scratch, to take each tile where it belongs (convolution scatters
// images laid side by side to NCHW, and rounds to bf16) while it is in L1.
// Tiles are disjoint; several threads may store at once.
struct GemmEpilogue {
  using TileStore =
      absl::FunctionRef<void(int64_t i0, int64_t rows, int64_t j0, int64_t cols,
                             const float* c, int64_t ldc)>;

  const float* row_bias = nullptr;  // [m], or none
  const float* addend = nullptr;    // [m, n] with row stride ld_addend, or none
  int64_t ld_addend = 0;
  bool relu = false;
  std::optional<TileStore> store;

  bool empty() const {
    return row_bias == nullptr && addend == nullptr && !relu &&
           !store.has_value();
  }
};

// C[m, n] = A * B + beta * C with A packed and B computed by `b` (k = a.k()),
// then the epilogue.
void Gemm(const GemmLhs& a, int64_t n, GemmRhs b, float beta, float* c,
          int64_t ldc, const GemmEpilogue& epilogue = {});

// C[m, n] = A[m, k] * B^T + beta * C, with A stored [m, k] (row stride lda)
// and B [n, k] given by `b`: both hold k contiguously, so neither is
// transposed on the way (dot products along k, summed at the end).
void GemmNT(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
            GemmRhs b, float beta, float* c, int64_t ldc);

// The AMX kernel proves itself before it is used: the first bf16 product on
// the AMX path in a process (ActiveIsa() == Isa::kAmx, by default, DIVE_ISA
// or SetActiveIsa) first runs a GEMM of 37 x 45 x 70 (a whole 32 x 32 tile
// and edges in m, n and k) on it and compares the result with the products
// of the same bf16 operands summed in double. If Linux refuses the tile data
// (arch_prctl), the tile instructions fault (SIGILL or SIGSEGV, caught during
// the check only) or the result differs, the process switches to the
// AVX512-BF16 kernels (SetActiveIsa(Isa::kAvx512Bf16); AMX is not used again)
// and logs one warning that names the reason:
//
//   AMX self-check failed (SIGILL in the tile GEMM); using avx512_bf16 kernels
//
// The check runs once per process; threads that need its verdict wait for
// it.
//
// AmxSelfCheck() runs it now if the AMX path is active and it has not run,
// and returns its verdict: OK when the kernel passed, the reason when it
// failed, FailedPrecondition when it has not run (the AMX path never was
// active).
absl::Status AmxSelfCheck();

// Tests only: the faults the self-check guards against, simulated so that
// the fallback is tested wherever the AMX path runs (emulated or not).
enum class AmxSelfCheckFault {
  kNone,
  kPermissionRefused,  // arch_prctl refuses the tile data
  kCorruptResult,      // an element of the tile GEMM's result is off by 3
  kSigill,             // SIGILL as the tile GEMM starts (LDTILECFG's fault)
};

// Tests only: the next bf16 product on the AMX path runs the self-check
// again, as the first in a process would, with `fault`. Not thread-safe
// against running GEMMs.
void SetAmxSelfCheckFaultForTesting(AmxSelfCheckFault fault);

}  // namespace dive

#endif  // TENSOR_GEMM_H_
