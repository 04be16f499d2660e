#include "tensor/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "Eigen/Core"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace dive {
namespace {

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

// Rounds x up to a multiple of `unit`.
int64_t RoundUp(int64_t x, int64_t unit) {
  return (x + unit - 1) / unit * unit;
}

// Memory for `floats` floats on 64-byte boundaries (whole cache lines), for
// std::free.
float* AlignedFloats(int64_t floats) {
  return static_cast<float*>(std::aligned_alloc(
      64, static_cast<size_t>(RoundUp(floats, 16)) * sizeof(float)));
}

#ifdef __AVX512F__

// dst[p * ld + j] = src[j * lds + p] for p, j < 16, through registers.
inline void Transpose16x16(const float* src, int64_t lds, float* dst,
                           int64_t ld) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
  // 32-bit, then 64-bit interleaves within 128-bit lanes, then two rounds of
  // 128-bit lane shuffles: r[i] ends up holding column i.
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]);
    const __m512d b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]);
    const __m512d d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int h = 0; h < 16; h += 8) {
    for (int i = 0; i < 4; ++i) {
      t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
    }
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * ld, r[i]);
}

// B stored row-major as a GemmRhs: op(B)[p0 : p0 + kc, j0 : j0 + nc].
void CopyStored(bool trans, const float* b, int64_t ldb, int64_t p0, int64_t kc,
                int64_t j0, int64_t nc, float* __restrict dst, int64_t ld) {
  if (!trans) {
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = b + (p0 + p) * ldb + j0;
      std::copy(src, src + nc, dst + p * ld);
    }
    return;
  }
  // op(B) = B^T (a Linear layer's weights): 16 x 16 blocks through
  // registers, scalar edges.
  auto element = [&](int64_t p, int64_t j) {
    dst[p * ld + j] = b[(j0 + j) * ldb + p0 + p];
  };
  int64_t j = 0;
  for (; j + 16 <= nc; j += 16) {
    int64_t p = 0;
    for (; p + 16 <= kc; p += 16) {
      Transpose16x16(b + (j0 + j) * ldb + p0 + p, ldb, dst + p * ld + j, ld);
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
// Packed GEMM with an AVX-512 micro-kernel (the BLIS structure, row-major).
//
// C is cut into kMr x kNr tiles. The micro-kernel keeps one tile in 24 zmm
// registers and, for every p of the shared dimension, broadcasts kMr values of
// A and loads kNr / 16 vectors of B: 24 FMAs per 10 loads. A and B are first
// copied ("packed") into the order the kernel reads them, zero-padded to whole
// tiles, with alpha folded into A:
//
//   packed A, per block of kKc along k: [m / kMr panels][kc][kMr]
//   packed B, per kKc x kNc block:      [kNc / kNr panels][kc][kNr]
//
// A kKc x kNc block of B (512 KiB, L2-sized) is packed once and swept by
// every kMr-row panel of A, which stays in L1 (6 KiB) during the sweep.
// Measured on bench/gemm_benchmark (1 core, n = 1024, GFLOP/s): 6x64 tiles
// 223-227, 8x48 221, 12x32 157, 14x32 153; kKc 512 instead of 256: same.
// -----------------------------------------------------------------------------

constexpr int kMr = 6;
constexpr int kNv = 4;  // zmm vectors per tile row
constexpr int kNr = 16 * kNv;
constexpr int64_t kKc = 256;
constexpr int64_t kNc = 8 * kNr;

// C[mr, nr] = A-panel * B-panel (+ C when `accumulate`), for mr <= kMr and
// nr <= kNr (edge tiles are written through masks).
void MicroKernel(int64_t kc, const float* __restrict a,
                 const float* __restrict b, float* __restrict c, int64_t ldc,
                 int mr, int nr, bool accumulate) {
  __m512 acc[kMr][kNv];
#pragma GCC unroll 8
  for (int i = 0; i < kMr; ++i) {
#pragma GCC unroll 8
    for (int v = 0; v < kNv; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < kc; ++p) {
    __m512 bv[kNv];
#pragma GCC unroll 8
    for (int v = 0; v < kNv; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 8
    for (int i = 0; i < kMr; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
#pragma GCC unroll 8
      for (int v = 0; v < kNv; ++v) {
        acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
      }
    }
    a += kMr;
    b += kNr;
  }
  if (mr == kMr && nr == kNr) {
#pragma GCC unroll 8
    for (int i = 0; i < kMr; ++i) {
      float* row = c + i * ldc;
#pragma GCC unroll 8
      for (int v = 0; v < kNv; ++v) {
        __m512 x = acc[i][v];
        if (accumulate) x = _mm512_add_ps(x, _mm512_loadu_ps(row + 16 * v));
        _mm512_storeu_ps(row + 16 * v, x);
      }
    }
    return;
  }
  __mmask16 mask[kNv];
  for (int v = 0; v < kNv; ++v) {
    const int left = std::clamp(nr - 16 * v, 0, 16);
    mask[v] = static_cast<__mmask16>((1u << left) - 1u);
  }
  for (int i = 0; i < mr; ++i) {
    float* row = c + i * ldc;
    for (int v = 0; v < kNv; ++v) {
      __m512 x = acc[i][v];
      if (accumulate) {
        x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], row + 16 * v));
      }
      _mm512_mask_storeu_ps(row + 16 * v, mask[v], x);
    }
  }
}

int64_t PackedLhsSize(int64_t m, int64_t k) { return RoundUp(m, kMr) * k; }

// This thread's buffer for packed blocks of B; it only grows, so the steady
// state of a training loop allocates nothing here.
float* RhsBuffer(int64_t floats) {
  thread_local std::unique_ptr<float, void (*)(void*)> buf(nullptr, std::free);
  thread_local int64_t size = 0;
  if (size < floats) {
    buf.reset(AlignedFloats(floats));
    size = floats;
  }
  return buf.get();
}

// C[i0 : i1, j_lo : j_hi] (+)= A[i0 : i1, :] * B[:, j_lo : j_hi] on one
// thread; i0 is a multiple of kMr. Without `overwrite` the kernel adds to C.
void PackedGemm(const GemmLhs& a, int64_t i0, int64_t i1, GemmRhs b,
                int64_t j_lo, int64_t j_hi, bool overwrite, float* c,
                int64_t ldc) {
  const int64_t k = a.k(), m_pad = RoundUp(a.m(), kMr);
  float* pb =
      RhsBuffer(std::min(kKc, k) * std::min(kNc, RoundUp(j_hi - j_lo, kNr)));
  for (int64_t j0 = j_lo; j0 < j_hi; j0 += kNc) {
    const int64_t nc = std::min(kNc, j_hi - j0);
    for (int64_t p0 = 0; p0 < k; p0 += kKc) {
      const int64_t kc = std::min(kKc, k - p0);
      const bool accumulate = !(overwrite && p0 == 0);
      for (int64_t jp = 0; jp < nc; jp += kNr) {
        const int64_t cols = std::min<int64_t>(kNr, nc - jp);
        float* panel = pb + jp * kc;
        b(p0, kc, j0 + jp, cols, panel, kNr);
        if (cols < kNr) {
          for (int64_t p = 0; p < kc; ++p) {
            std::fill(panel + p * kNr + cols, panel + (p + 1) * kNr, 0.0f);
          }
        }
      }
      const float* pa = a.data() + p0 * m_pad;
      for (int64_t ir = i0; ir < i1; ir += kMr) {
        const int mr = static_cast<int>(std::min<int64_t>(kMr, i1 - ir));
        for (int64_t jr = 0; jr < nc; jr += kNr) {
          const int nr = static_cast<int>(std::min<int64_t>(kNr, nc - jr));
          MicroKernel(kc, pa + ir * kc, pb + jr * kc, c + ir * ldc + j0 + jr,
                      ldc, mr, nr, accumulate);
        }
      }
    }
  }
}

// Below this many multiply-adds a second thread costs more than it saves.
constexpr int64_t kMinParallelMacs = 1 << 20;

void PackedGemmParallel(const GemmLhs& a, int64_t n, GemmRhs b, float beta,
                        float* c, int64_t ldc) {
  const int64_t m = a.m();
  const bool overwrite = beta == 0.0f;
  if (!overwrite) ScaleC(m, n, beta, c, ldc);
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (m * n * a.k() < kMinParallelMacs) threads = 1;
  if (threads == 1) {
    PackedGemm(a, 0, m, b, 0, n, overwrite, c, ldc);
    return;
  }
  // Each thread computes a slab of C in whole tiles: columns when C is wide
  // (sharing the packed A), else rows (each packing all of B).
  const bool split_n = n >= m;
  const int64_t unit = split_n ? kNr : kMr;
  const int64_t extent = split_n ? n : m;
  const int64_t tiles = (extent + unit - 1) / unit;
  threads = static_cast<int>(std::min<int64_t>(threads, tiles));
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int64_t lo = std::min(extent, tiles * t / threads * unit);
    const int64_t hi = std::min(extent, tiles * (t + 1) / threads * unit);
    if (hi > lo) {
      if (split_n) {
        PackedGemm(a, 0, m, b, lo, hi, overwrite, c, ldc);
      } else {
        PackedGemm(a, lo, hi, b, 0, n, overwrite, c, ldc);
      }
    }
  }
}

// ---- GemmNT: dot products along k -------------------------------------------
//
// A tile is kNtM rows of A times kNtRows rows of B: 24 zmm accumulators of 16
// partial sums along k each (24 FMAs per 10 loads), summed once per block of
// kNtKc. B is computed into row blocks of kNtNc x kNtKc floats (512 KiB, L2);
// rows of A are read in place.

constexpr int kNtM = 6;     // rows of A (and C) per tile
constexpr int kNtRows = 4;  // rows of B (columns of C) per tile
constexpr int64_t kNtKc = 1024;
constexpr int64_t kNtNc = 128;

// [sum(a0), sum(a1), sum(a2), sum(a3)].
inline __m128 Sum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  // Per 128-bit lane: [a0 0+2, a1 0+2, a0 1+3, a1 1+3], likewise for a2, a3.
  const __m512 t0 =
      _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
  const __m512 t1 =
      _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
  // Per 128-bit lane: [a0, a1, a2, a3] partial sums.
  const __m512d d0 = _mm512_castps_pd(t0), d1 = _mm512_castps_pd(t1);
  const __m512 u = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(d0, d1)),
                                 _mm512_castpd_ps(_mm512_unpackhi_pd(d0, d1)));
  const __m256 v = _mm256_add_ps(
      _mm512_castps512_ps256(u),
      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
  return _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
}

// C[i, j] += sum_p A[i, p] * B[j, p] for i < mr, j < nr over p < kp: rows of
// A at a + i * lda, rows of B at b + j * ldb, zero-padded to a multiple of 16.
void NtKernel(int64_t kp, const float* a, int64_t lda, const float* b,
              int64_t ldb, float* c, int64_t ldc, int mr, int nr) {
  const float* row[kNtM];
  for (int i = 0; i < kNtM; ++i) row[i] = a + std::min(i, mr - 1) * lda;
  __m512 acc[kNtM][kNtRows];
#pragma GCC unroll 8
  for (int i = 0; i < kNtM; ++i) {
#pragma GCC unroll 8
    for (int j = 0; j < kNtRows; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < kp; p += 16) {
    const __mmask16 mask = kp - p >= 16
                               ? __mmask16{0xFFFF}
                               : static_cast<__mmask16>((1u << (kp - p)) - 1u);
    __m512 bv[kNtRows];
#pragma GCC unroll 8
    for (int j = 0; j < kNtRows; ++j) bv[j] = _mm512_load_ps(b + j * ldb + p);
#pragma GCC unroll 8
    for (int i = 0; i < kNtM; ++i) {
      const __m512 av = _mm512_maskz_loadu_ps(mask, row[i] + p);
#pragma GCC unroll 8
      for (int j = 0; j < kNtRows; ++j) {
        acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
      }
    }
  }
  // Constant indices only: a runtime row index into acc would keep it in
  // memory instead of registers.
  __m128 sum[kNtM];
#pragma GCC unroll 8
  for (int i = 0; i < kNtM; ++i) {
    sum[i] = Sum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
  }
  const auto cols = static_cast<__mmask8>((1u << nr) - 1u);
  for (int i = 0; i < mr; ++i) {
    float* out = c + i * ldc;
    _mm_mask_storeu_ps(out, cols,
                       _mm_add_ps(sum[i], _mm_maskz_loadu_ps(cols, out)));
  }
}

// Rows [i0, i1) of C += A * B^T on one thread (i0 a multiple of kNtM).
void NtGemm(int64_t i0, int64_t i1, int64_t n, int64_t k, const float* a,
            int64_t lda, GemmRhs b, float* c, int64_t ldc) {
  float* pb = RhsBuffer(RoundUp(std::min(n, kNtNc), kNtRows) *
                        RoundUp(std::min(k, kNtKc), 16));
  for (int64_t p0 = 0; p0 < k; p0 += kNtKc) {
    const int64_t kp = std::min(kNtKc, k - p0), ldb = RoundUp(kp, 16);
    for (int64_t j0 = 0; j0 < n; j0 += kNtNc) {
      const int64_t nb = std::min(kNtNc, n - j0);
      b(j0, nb, p0, kp, pb, ldb);
      for (int64_t j = 0; j < nb; ++j) {
        std::fill(pb + j * ldb + kp, pb + (j + 1) * ldb, 0.0f);
      }
      std::fill(pb + nb * ldb, pb + RoundUp(nb, kNtRows) * ldb, 0.0f);
      for (int64_t ir = i0; ir < i1; ir += kNtM) {
        const int mr = static_cast<int>(std::min<int64_t>(kNtM, i1 - ir));
        for (int64_t jr = 0; jr < nb; jr += kNtRows) {
          const int nr = static_cast<int>(std::min<int64_t>(kNtRows, nb - jr));
          NtKernel(kp, a + ir * lda + p0, lda, pb + jr * ldb, ldb,
                   c + ir * ldc + j0 + jr, ldc, mr, nr);
        }
      }
    }
  }
}

#else  // !__AVX512F__: Eigen's GEMM on mapped buffers.

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
// thread's.
const float* Materialize(GemmRhs b, int64_t rows, int64_t cols) {
  thread_local std::vector<float> m;
  m.resize(static_cast<size_t>(rows * cols));
  b(0, rows, 0, cols, m.data(), cols);
  return m.data();
}

// Without the packed kernel GemmLhs holds alpha * op(A) as a plain [m, k].
int64_t PackedLhsSize(int64_t m, int64_t k) { return m * k; }

#endif  // __AVX512F__

}  // namespace

int64_t GemmTileColumns() {
#ifdef __AVX512F__
  return kNr;
#else
  return 16;  // about Eigen's register block
#endif
}

void GemmLhs::Free::operator()(float* p) const { std::free(p); }

void GemmLhs::Pack(bool trans, int64_t m, int64_t k, const float* a,
                   int64_t lda, float alpha) {
  m_ = m;
  k_ = k;
  const int64_t size = PackedLhsSize(m, k);
  if (capacity_ < size) {
    data_.reset(AlignedFloats(size));
    capacity_ = size;
  }
  float* __restrict out = data_.get();
#ifdef __AVX512F__
  const int64_t m_pad = RoundUp(m, kMr);
  // Large operands (a layer's weights, packed outside the batch loop) are
  // packed by all threads, panel by panel.
#pragma omp parallel for schedule(static) if (m * k >= (1 << 16) && \
                                              !omp_in_parallel())
  for (int64_t i0 = 0; i0 < m_pad; i0 += kMr) {
    for (int64_t p0 = 0; p0 < k; p0 += kKc) {
      const int64_t kc = std::min(kKc, k - p0);
      float* __restrict panel = out + p0 * m_pad + i0 * kc;
      const int64_t rows = std::min<int64_t>(kMr, m - i0);
      if (rows < kMr) std::fill(panel, panel + kc * kMr, 0.0f);
      if (trans) {  // row p of the panel: A[p0 + p, i0 : i0 + rows]
        for (int64_t p = 0; p < kc; ++p) {
          const float* __restrict src = a + (p0 + p) * lda + i0;
          for (int64_t i = 0; i < rows; ++i)
            panel[p * kMr + i] = alpha * src[i];
        }
      } else {  // column i of the panel: A[i0 + i, p0 : p0 + kc]
        for (int64_t i = 0; i < rows; ++i) {
          const float* __restrict src = a + (i0 + i) * lda + p0;
          for (int64_t p = 0; p < kc; ++p) panel[p * kMr + i] = alpha * src[p];
        }
      }
    }
  }
#else
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t p = 0; p < k; ++p) {
      out[i * k + p] = alpha * (trans ? a[p * lda + i] : a[i * lda + p]);
    }
  }
#endif
}

void Gemm(const GemmLhs& a, int64_t n, GemmRhs b, float beta, float* c,
          int64_t ldc) {
  const int64_t m = a.m(), k = a.k();
  if (m == 0 || n == 0) return;
  if (k == 0) {
    ScaleC(m, n, beta, c, ldc);
    return;
  }
#ifdef __AVX512F__
  PackedGemmParallel(a, n, b, beta, c, ldc);
#else
  EigenGemm(false, false, m, n, k, 1.0f, a.data(), k, Materialize(b, k, n), n,
            beta, c, ldc);
#endif
}

void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
          float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == 0.0f) {
    ScaleC(m, n, beta, c, ldc);
    return;
  }
#ifdef __AVX512F__
  thread_local GemmLhs lhs;
  lhs.Pack(trans_a, m, k, a, lda, alpha);
  PackedGemmParallel(
      lhs, n,
      [&](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst,
          int64_t ld) { CopyStored(trans_b, b, ldb, p0, kc, j0, nc, dst, ld); },
      beta, c, ldc);
#else
  EigenGemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

void GemmNT(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
            GemmRhs b, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  ScaleC(m, n, beta, c, ldc);
  if (k == 0) return;
#ifdef __AVX512F__
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (m * n * k < kMinParallelMacs) threads = 1;
  // Threads split the rows of C in whole tiles, each computing all of B.
  const int64_t tiles = (m + kNtM - 1) / kNtM;
  threads = static_cast<int>(std::min<int64_t>(threads, tiles));
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int t = omp_get_thread_num();
    const int64_t lo = std::min(m, tiles * t / threads * kNtM);
    const int64_t hi = std::min(m, tiles * (t + 1) / threads * kNtM);
    if (hi > lo) NtGemm(lo, hi, n, k, a, lda, b, c, ldc);
  }
#else
  EigenGemm(false, true, m, n, k, 1.0f, a, lda, Materialize(b, n, k), k, 1.0f,
            c, ldc);
#endif
}

}  // namespace dive
