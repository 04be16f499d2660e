#include "tensor/gemm.h"

#include <omp.h>
#include <setjmp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#include "Eigen/Core"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "tensor/bf16.h"
#include "tensor/cpu.h"
#include "tensor/gemm_kernels.h"
#include "tensor/kernel_util.h"

namespace dive {
namespace {

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

// B stored row-major as a GemmRhs: op(B)[p0 : p0 + kc, j0 : j0 + nc].
void CopyStored(bool trans, const float* b, int64_t ldb, int64_t p0, int64_t kc,
                int64_t j0, int64_t nc, float* __restrict dst, int64_t ld,
                bool avx512) {
  if (!trans) {
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = b + (p0 + p) * ldb + j0;
      std::copy(src, src + nc, dst + p * ld);
    }
    return;
  }
  // op(B) = B^T (a Linear layer's weights): 16 x 16 blocks, through
  // registers with AVX-512; scalar edges.
  auto element = [&](int64_t p, int64_t j) {
    dst[p * ld + j] = b[(j0 + j) * ldb + p0 + p];
  };
  int64_t j = 0;
  for (; j + 16 <= nc; j += 16) {
    int64_t p = 0;
    for (; p + 16 <= kc; p += 16) {
      const float* block = b + (j0 + j) * ldb + p0 + p;
      if (avx512) {
        gemm_internal::Avx512Transpose16x16(block, ldb, dst + p * ld + j, ld);
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

// ---- The AMX self-check (gemm.h) --------------------------------------------
//
// Run by the first thread to ask ActivePath for the AMX path, with the tile
// GEMM under CatchFaults; threads asking meanwhile wait for the verdict.

// Where a SIGILL or SIGSEGV of this thread jumps while CatchFaults runs, and
// which signal it was.
struct FaultJump {
  sigjmp_buf target;
  volatile sig_atomic_t signo = 0;
};
thread_local FaultJump* fault_jump = nullptr;
struct sigaction previous_sigill, previous_sigsegv;

void OnFault(int signo) {
  if (fault_jump != nullptr) {
    fault_jump->signo = signo;
    siglongjmp(fault_jump->target, 1);
  }
  // Another thread's: delivered again to the handler from before CatchFaults.
  sigaction(signo, signo == SIGILL ? &previous_sigill : &previous_sigsegv,
            nullptr);
  raise(signo);
}

// Runs `f` with this thread's SIGILL and SIGSEGV caught, then restores the
// previous handlers; returns the signal that stopped `f`, or 0. The jump out
// of `f` skips destructors: `f` must hold no object that has one where it
// can fault.
int CatchFaults(absl::FunctionRef<void()> f) {
  struct sigaction on_fault = {};
  on_fault.sa_handler = &OnFault;
  sigemptyset(&on_fault.sa_mask);
  sigaction(SIGILL, &on_fault, &previous_sigill);
  sigaction(SIGSEGV, &on_fault, &previous_sigsegv);
  FaultJump jump;
  if (sigsetjmp(jump.target, /*savemask=*/1) == 0) {
    fault_jump = &jump;
    f();
  }
  fault_jump = nullptr;
  sigaction(SIGILL, &previous_sigill, nullptr);
  sigaction(SIGSEGV, &previous_sigsegv, nullptr);
  return jump.signo;
}

// The self-check's product: a whole 32 x 32 tile of C and its edges
// (m = 32 + 5, n = 32 + 13), k in two steps of 32 and a zero-padded one.
constexpr int64_t kCheckM = 37, kCheckN = 45, kCheckK = 70;

// Deterministic operands in [-1, 1], most of them rounded by bf16.
std::vector<float> CheckOperand(int64_t size, int64_t stride) {
  std::vector<float> v(size);
  for (int64_t i = 0; i < size; ++i) {
    v[i] = static_cast<float>(i * stride % 101) / 50 - 1;
  }
  return v;
}

// The self-check with `fault` simulated: OK, or why the AMX kernel must not
// run. Its GEMM takes the AMX path (amx_checking below).
absl::Status RunAmxSelfCheck(AmxSelfCheckFault fault) {
  if (fault == AmxSelfCheckFault::kPermissionRefused ||
      !(gemm_internal::AmxEmulated() || RequestAmxPermission())) {
    return absl::PermissionDeniedError(
        "Linux refused the tile data: arch_prctl(ARCH_REQ_XCOMP_PERM) failed");
  }
  const std::vector<float> a = CheckOperand(kCheckM * kCheckK, 37);
  const std::vector<float> b = CheckOperand(kCheckK * kCheckN, 53);
  std::vector<float> c(kCheckM * kCheckN);
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  GemmLhs lhs;
  lhs.Pack(false, kCheckM, kCheckK, a.data(), kCheckK);
  const int signo = CatchFaults([&] {
    if (fault == AmxSelfCheckFault::kSigill) raise(SIGILL);
    Gemm(
        lhs, kCheckN,
        [&](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst,
            int64_t ld) {
          CopyStored(false, b.data(), kCheckN, p0, kc, j0, nc, dst, ld,
                     /*avx512=*/true);
        },
        0.0f, c.data(), kCheckN);
  });
  if (signo != 0) {
    return absl::InternalError(absl::StrCat(
        signo == SIGILL ? "SIGILL" : "SIGSEGV", " in the tile GEMM"));
  }
  if (fault == AmxSelfCheckFault::kCorruptResult) c[4 * kCheckN + 17] += 3;
  for (int64_t i = 0; i < kCheckM; ++i) {
    for (int64_t j = 0; j < kCheckN; ++j) {
      double want = 0, magnitude = 0;
      for (int64_t p = 0; p < kCheckK; ++p) {
        const double product =
            static_cast<double>(RoundToBf16(a[i * kCheckK + p])) *
            RoundToBf16(b[p * kCheckN + j]);
        want += product;
        magnitude += std::fabs(product);
      }
      // Exact products summed in float32: off by at most kCheckK roundings
      // of 2^-24 of their magnitude (4.2e-6). NaN fails too.
      const double error = std::fabs(c[i * kCheckN + j] - want);
      if (!(error <= 1e-5 * magnitude)) {
        return absl::InternalError(absl::StrFormat(
            "tile result differs from the bf16 products by %.3g at C[%d][%d]",
            error, i, j));
      }
    }
  }
  return absl::OkStatus();
}

// The self-check's verdict once decided (null before, and again after
// SetAmxSelfCheckFaultForTesting), and the fault the next one simulates.
std::atomic<const absl::Status*> amx_verdict{nullptr};
AmxSelfCheckFault amx_fault = AmxSelfCheckFault::kNone;  // AmxCheckMutex's
// Set on the thread that runs the check: its GEMM takes the AMX path.
thread_local bool amx_checking = false;

std::mutex& AmxCheckMutex() {
  static std::mutex* const mutex = new std::mutex;
  return *mutex;
}

// The path below AMX, within what the CPU has (the emulated AMX path runs on
// CPUs without AMX).
Isa AmxFallback() {
  return std::min(Isa::kAvx512Bf16, BestIsa(DetectedCpu()));
}

// The verdict, the check run first where the AMX path is active and it has
// not run; null where neither.
const absl::Status* AmxVerdict() {
  const absl::Status* verdict = amx_verdict.load(std::memory_order_acquire);
  if (verdict != nullptr || ActiveIsa() != Isa::kAmx) return verdict;
  const std::lock_guard<std::mutex> lock(AmxCheckMutex());
  verdict = amx_verdict.load(std::memory_order_relaxed);
  if (verdict != nullptr) return verdict;
  amx_checking = true;
  verdict = new absl::Status(RunAmxSelfCheck(amx_fault));
  amx_checking = false;
  if (!verdict->ok()) {
    SetActiveIsa(AmxFallback()).IgnoreError();  // a path the CPU has
    LOG(WARNING) << "AMX self-check failed (" << verdict->message()
                 << "); using " << IsaName(AmxFallback()) << " kernels";
  }
  amx_verdict.store(verdict, std::memory_order_release);
  return verdict;
}

// Whether bf16 products may run on the AMX kernel: it has passed the
// self-check, or is running it on this thread.
bool AmxPassed() {
  if (amx_checking) return true;
  const absl::Status* verdict = AmxVerdict();
  return verdict != nullptr && verdict->ok();
}

// -----------------------------------------------------------------------------
// Packed GEMM (the BLIS structure, row-major), with the micro-kernel of the
// active ISA (gemm_kernels.h): 6 x 64 tiles in 24 zmm registers with AVX-512
// (24 FMAs per 10 loads), 6 x 16 in 12 ymm registers with AVX2.
//
// C is cut into kGemmMr x nr tiles. For every p of the shared dimension the
// micro-kernel broadcasts kGemmMr values of A and loads nr / lanes vectors of
// B. A and B are first copied ("packed") into the order the kernel reads
// them, zero-padded to whole tiles, with alpha folded into A:
//
//   packed A, per block of kKc along k: [m / kGemmMr panels][kc][kGemmMr]
//   packed B, per kKc x kNc block:      [kNc / nr panels][kc][nr]
//
// A kKc x kNc block of B (512 KiB, L2-sized) is packed once and swept by
// every kGemmMr-row panel of A, which stays in L1 (6 KiB) during the sweep.
// Measured on bench/gemm_benchmark (1 core, n = 1024, GFLOP/s, AVX-512):
// 6x64 tiles 223-227, 8x48 221, 12x32 157, 14x32 153; kKc 512 instead of
// 256: same.
//
// bf16 products use the same blocking with bf16 panels (gemm_kernels.h):
// B's panels are computed in float32 as above and converted to pairs along
// k, A is packed for the kernel: pairs beside 6 rows for the AVX512-BF16
// 6 x 64 tile (VDPBF16PS), rows of 32 k for AMX's 32 x 32 tile (TDPBF16PS).
// Their blocks along k are kKcBf16 = 512 (the bytes of float32's 256; 512
// against 256: 187 against 170 GFLOP/s). AVX512-BF16, 1 core, n = 1024 on
// an AMD EPYC (Zen 4): 187 GFLOP/s, 82% of the VDPBF16PS peak, against 96
// GFLOP/s in float32.
// -----------------------------------------------------------------------------

using gemm_internal::Bf16MicroKernel;
using gemm_internal::kGemmMr;
using gemm_internal::MicroKernel;
constexpr int64_t kKc = 256;      // float32 panels
constexpr int64_t kKcBf16 = 512;  // bf16 panels, the same bytes; a multiple
                                  // of every bf16 kernel's k_unit
constexpr int64_t kNc = 512;  // a multiple of every kernel's nr

// The depth along k of a packed block: A is packed and B computed in blocks
// of it, so GemmLhs::Pack and PackedGemm must agree.
int64_t KBlock(bool bf16_panels) { return bf16_panels ? kKcBf16 : kKc; }

// The kernel paths of this file.
enum class Path { kEigen, kAvx2, kAvx512, kAvx512Bf16, kAmx };

// The path for products in `precision`: bf16 ones run on AMX (once its
// kernel has passed the self-check) or VDPBF16PS where the CPU has them, on
// the float32 kernels (operands rounded) elsewhere. The self-check, a GEMM
// of its own, may run here: callers ask before they use this thread's
// buffers or a GemmLhs.
Path ActivePath(MatmulPrecision precision) {
  const bool bf16 = precision == MatmulPrecision::kBfloat16;
  Isa isa = ActiveIsa();
  if (bf16 && isa == Isa::kAmx && !AmxPassed()) isa = AmxFallback();
  if (bf16 && isa >= Isa::kAvx512Bf16) {
    return isa == Isa::kAmx ? Path::kAmx : Path::kAvx512Bf16;
  }
  return isa >= Isa::kAvx512 ? Path::kAvx512
         : isa >= Isa::kAvx2 ? Path::kAvx2
                             : Path::kEigen;
}

GemmLayout LayoutOf(Path path) {
  switch (path) {
    case Path::kEigen:
      return GemmLayout::kPlain;
    case Path::kAvx512Bf16:
      return GemmLayout::kBf16Panels;
    case Path::kAmx:
      return GemmLayout::kAmxPanels;
    default:
      return GemmLayout::kPanels;
  }
}

Bf16MicroKernel Bf16KernelOf(Path path) {
  CHECK(path == Path::kAvx512Bf16 || path == Path::kAmx)
      << "not a bf16 micro-kernel path";
  return path == Path::kAmx ? gemm_internal::AmxMicroKernel()
                            : gemm_internal::Avx512Bf16MicroKernel();
}

MicroKernel KernelOf(Path path) {
  CHECK(path == Path::kAvx2 || path == Path::kAvx512)
      << "not a float32 micro-kernel path";
  return path == Path::kAvx512 ? gemm_internal::Avx512MicroKernel()
                               : gemm_internal::Avx2MicroKernel();
}

// C[i0 : i1, j_lo : j_hi] (+)= A[i0 : i1, :] * B[:, j_lo : j_hi] on one
// thread; i0 is a multiple of the kernel's mr. Without `overwrite` the
// kernel adds to C. The float32 kernels take B's panels as `b` writes them
// (rounded to bf16 in bf16 precision), the bf16 ones as pairs converted from
// them, k padded with zeros to the kernel's unit.
template <typename Kernel>
void PackedGemm(Kernel kernel, const GemmLhs& a, int64_t i0, int64_t i1,
                GemmRhs b, int64_t j_lo, int64_t j_hi, bool overwrite,
                float* c, int64_t ldc) {
  constexpr bool kPairs = std::is_same_v<Kernel, Bf16MicroKernel>;
  using Element = std::conditional_t<kPairs, uint16_t, float>;
  int64_t k_unit = 1;
  if constexpr (kPairs) k_unit = kernel.k_unit;
  const bool round = !kPairs && a.precision() == MatmulPrecision::kBfloat16;
  const int64_t nr_tile = kernel.nr, mr_tile = kernel.mr;
  const int64_t k = a.k(), m_pad = RoundUp(a.m(), mr_tile);
  const int64_t kc_block = KBlock(kPairs);
  const int64_t kc_max = RoundUp(std::min(kc_block, k), k_unit);
  Element* pb = ThreadBuffer<Element>(
      kRhsBlock, kc_max * std::min(kNc, RoundUp(j_hi - j_lo, nr_tile)));
  float* scratch =
      kPairs ? ThreadBuffer<float>(kRhsPanel, kc_max * nr_tile) : nullptr;
  if constexpr (kPairs) {
    if (kernel.enter != nullptr) kernel.enter();
  }
  for (int64_t j0 = j_lo; j0 < j_hi; j0 += kNc) {
    const int64_t nc = std::min(kNc, j_hi - j0);
    for (int64_t p0 = 0; p0 < k; p0 += kc_block) {
      const int64_t kc = std::min(kc_block, k - p0);
      const int64_t kc_pad = RoundUp(kc, k_unit);  // per panel column
      const bool accumulate = !(overwrite && p0 == 0);
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
            std::fill(panel + p * nr_tile + cols, panel + (p + 1) * nr_tile, 0.0f);
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
          kernel.run(kc_pad, pa + ir * kc_pad, pb + jr * kc_pad,
                     c + ir * ldc + j0 + jr, ldc, mr, nr, accumulate);
        }
      }
    }
  }
  if constexpr (kPairs) {
    if (kernel.leave != nullptr) kernel.leave();
  }
}

// Below this many multiply-adds a second thread costs more than it saves.
constexpr int64_t kMinParallelMacs = 1 << 20;

template <typename Kernel>
void PackedGemmParallel(Kernel kernel, const GemmLhs& a, int64_t n,
                        GemmRhs b, float beta, float* c, int64_t ldc) {
  const int64_t m = a.m();
  const bool overwrite = beta == 0.0f;
  if (!overwrite) ScaleC(m, n, beta, c, ldc);
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (m * n * a.k() < kMinParallelMacs) threads = 1;
  if (threads == 1) {
    PackedGemm(kernel, a, 0, m, b, 0, n, overwrite, c, ldc);
    return;
  }
  // Each thread computes a slab of C in whole tiles: columns when C is wide
  // (sharing the packed A), else rows (each packing all of B).
  const bool split_n = n >= m;
  const int64_t unit = split_n ? kernel.nr : kernel.mr;
  const int64_t extent = split_n ? n : m;
  const int64_t tiles = CeilDiv(extent, unit);
  threads = static_cast<int>(std::min<int64_t>(threads, tiles));
#pragma omp parallel num_threads(threads)
  {
    const auto [lo, hi] =
        ThreadSlab(extent, unit, omp_get_thread_num(), threads);
    if (hi > lo) {
      if (split_n) {
        PackedGemm(kernel, a, 0, m, b, lo, hi, overwrite, c, ldc);
      } else {
        PackedGemm(kernel, a, lo, hi, b, 0, n, overwrite, c, ldc);
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
  float* pf = ThreadBuffer<float>(kRhsBlock, rows * RoundUp(std::min(k, kNtKc), 16));
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
            gemm_internal::Avx512Bf16NtKernel(ldb, a + ir * lda + p0, lda,
                                              pb + jr * ldb, ldb,
                                              c + ir * ldc + j0 + jr, ldc, mr,
                                              nr);
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
                    int64_t lda, GemmRhs b, bool round, float* c,
                    int64_t ldc) {
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

// ---- Eigen's GEMM on mapped buffers (CPUs without AVX2) ----------------------

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

int64_t GemmTileColumns() {
  const Path path = ActivePath(current_precision);
  if (path == Path::kEigen) return 16;  // about Eigen's
  return path >= Path::kAvx512Bf16 ? Bf16KernelOf(path).nr : KernelOf(path).nr;
}

void GemmLhs::Free::operator()(void* p) const { std::free(p); }

void GemmLhs::Pack(bool trans, int64_t m, int64_t k, const float* a,
                   int64_t lda, float alpha) {
  const Path path = ActivePath(current_precision);
  m_ = m;
  k_ = k;
  precision_ = current_precision;
  layout_ = LayoutOf(path);
  const bool bf16 = precision_ == MatmulPrecision::kBfloat16;
  const bool amx = layout_ == GemmLayout::kAmxPanels;
  // The tile and padding of the kernel that will read the panels.
  const bool bf16_panels = path >= Path::kAvx512Bf16;
  const int64_t mr = bf16_panels ? Bf16KernelOf(path).mr : kGemmMr;
  const int64_t k_unit = bf16_panels ? Bf16KernelOf(path).k_unit : 1;
  const int64_t m_pad = RoundUp(m, mr);
  const int64_t bytes = layout_ == GemmLayout::kPlain ? m * k * 4
                        : layout_ == GemmLayout::kPanels
                            ? m_pad * k * 4
                            : m_pad * RoundUp(k, k_unit) * 2;
  if (capacity_ < bytes) {
    data_.reset(AlignedBytes(bytes));
    capacity_ = bytes;
  }
  if (layout_ == GemmLayout::kPlain) {  // Eigen's GEMM takes it as [m, k].
    float* __restrict out = static_cast<float*>(data_.get());
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t p = 0; p < k; ++p) {
        out[i * k + p] = alpha * (trans ? a[p * lda + i] : a[i * lda + p]);
      }
    }
    if (bf16) RoundToBf16(out, m * k);
    return;
  }
  const int64_t kc_block = KBlock(bf16_panels);
  // Large operands (a layer's weights, packed outside the batch loop) are
  // packed by all threads, panel by panel.
#pragma omp parallel for schedule(static) if (m * k >= (1 << 16) && \
                                              !omp_in_parallel())
  for (int64_t i0 = 0; i0 < m_pad; i0 += mr) {
    for (int64_t p0 = 0; p0 < k; p0 += kc_block) {
      const int64_t kc = std::min(kc_block, k - p0);
      const int64_t rows = std::min<int64_t>(mr, m - i0);
      if (amx) {  // [mr][kc_pad]: rows of A, through a float32 block
        const int64_t kc_pad = RoundUp(kc, k_unit);
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
        uint16_t* panel =
            static_cast<uint16_t*>(data_.get()) + p0 * m_pad + i0 * kc_pad;
        for (int64_t i = 0; i < rows; ++i) {
          gemm_internal::Avx512Bf16Convert(block + i * kc, kc, kc_pad,
                                           panel + i * kc_pad);
        }
        std::fill(panel + rows * kc_pad, panel + mr * kc_pad, uint16_t{0});
        continue;
      }
      // The bf16 layout is converted from a float32 panel built first.
      const bool pairs = layout_ == GemmLayout::kBf16Panels;
      float* __restrict panel =
          pairs ? ThreadBuffer<float>(kLhsPanel, kc * kGemmMr)
                : static_cast<float*>(data_.get()) + p0 * m_pad + i0 * kc;
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
      if (pairs) {
        gemm_internal::Avx512Bf16PackPairs(
            panel, kc, kGemmMr,
            static_cast<uint16_t*>(data_.get()) + p0 * m_pad +
                i0 * RoundUp(kc, 2));
      } else if (bf16) {
        RoundToBf16(panel, kc * kGemmMr);
      }
    }
  }
}

void Gemm(const GemmLhs& a, int64_t n, GemmRhs b, float beta, float* c,
          int64_t ldc) {
  const int64_t m = a.m(), k = a.k();
  if (m == 0 || n == 0) return;
  if (k == 0) {
    ScaleC(m, n, beta, c, ldc);
    return;
  }
  const Path path = ActivePath(a.precision());
  CHECK(a.layout() == LayoutOf(path))
      << "GemmLhs packed for another kernel path: pack it again after "
         "SetActiveIsa";
  switch (path) {
    case Path::kEigen:
      EigenGemm(false, false, m, n, k, 1.0f, a.floats(), k,
                Materialize(b, k, n,
                            a.precision() == MatmulPrecision::kBfloat16),
                n, beta, c, ldc);
      return;
    case Path::kAvx512Bf16:
    case Path::kAmx:
      PackedGemmParallel(Bf16KernelOf(path), a, n, b, beta, c, ldc);
      return;
    default:
      PackedGemmParallel(KernelOf(path), a, n, b, beta, c, ldc);
  }
}

void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
          float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == 0.0f) {
    ScaleC(m, n, beta, c, ldc);
    return;
  }
  const Path path = ActivePath(current_precision);
  if (path == Path::kEigen && current_precision == MatmulPrecision::kFloat32) {
    EigenGemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // Packed (or, for Eigen in bf16, copied and rounded) on the way.
  thread_local GemmLhs lhs;
  lhs.Pack(trans_a, m, k, a, lda, alpha);
  const bool avx512 = path >= Path::kAvx512;
  Gemm(
      lhs, n,
      [&](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst,
          int64_t ld) {
        CopyStored(trans_b, b, ldb, p0, kc, j0, nc, dst, ld, avx512);
      },
      beta, c, ldc);
}

void GemmNT(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
            GemmRhs b, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  ScaleC(m, n, beta, c, ldc);
  if (k == 0) return;
  const Path path = ActivePath(current_precision);
  if (path == Path::kAvx2 && n >= 32) {
    // The packed GEMM with B^T's panels transposed from B's rows as they are
    // computed (the AVX2 tile is 16 columns wide). For narrower C Eigen's is
    // faster (m 6, n 25, k 784: 18 GFLOP/s against 7 on an AMD EPYC).
    thread_local GemmLhs lhs;
    lhs.Pack(false, m, k, a, lda);
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
    return;
  }
  if (path >= Path::kAvx512Bf16) {  // A's rows converted once (VDPBF16PS)
    const int64_t lda16 = RoundUp(k, 32);
    uint16_t* a16 = ThreadBuffer<uint16_t>(kLhsRows, m * lda16);
    for (int64_t i = 0; i < m; ++i) {
      gemm_internal::Avx512Bf16Convert(a + i * lda, k, lda16, a16 + i * lda16);
    }
    NtGemmParallel(m, n, k, a16, lda16, b, false, c, ldc);
    return;
  }
  const bool bf16 = current_precision == MatmulPrecision::kBfloat16;
  if (bf16) {  // A rounded into a buffer of this thread's
    float* rounded = ThreadBuffer<float>(kLhsRows, m * k);
    for (int64_t i = 0; i < m; ++i) {
      std::copy(a + i * lda, a + i * lda + k, rounded + i * k);
    }
    RoundToBf16(rounded, m * k);
    a = rounded;
    lda = k;
  }
  if (path != Path::kAvx512) {
    EigenGemm(false, true, m, n, k, 1.0f, a, lda, Materialize(b, n, k, bf16),
              k, 1.0f, c, ldc);
    return;
  }
  NtGemmParallel(m, n, k, a, lda, b, bf16, c, ldc);
}

absl::Status AmxSelfCheck() {
  const absl::Status* verdict = AmxVerdict();
  if (verdict == nullptr) {
    return absl::FailedPreconditionError("the AMX path has not been active");
  }
  return *verdict;
}

void SetAmxSelfCheckFaultForTesting(AmxSelfCheckFault fault) {
  const std::lock_guard<std::mutex> lock(AmxCheckMutex());
  amx_fault = fault;
  delete amx_verdict.exchange(nullptr);
}

}  // namespace dive
