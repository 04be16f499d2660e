#include "tensor/conv.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/cpu.h"
#include "tensor/gemm.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace dive {
namespace {

void CheckFloat4D(const char* op, const char* name, const Tensor& t) {
  CHECK(t.defined()) << op << ": " << name << " is undefined";
  CHECK(t.dtype() == DType::kFloat32)
      << op << ": " << name << " must be float32, got " << DTypeName(t.dtype())
      << " tensor of shape " << t.shape();
  CHECK_EQ(t.rank(), 4) << op << ": " << name
                        << " must be 4-D (NCHW), got shape " << t.shape();
}

void CheckShape4D(const char* op, const char* name, const Shape& s) {
  CHECK_EQ(s.rank(), 4) << op << ": " << name
                        << " must be 4-D (NCHW), got shape " << s;
}

// " (x [2, 3, 8, 8], w [4, 1, 3, 3])": the shapes an error message names.
std::string Shapes(const char* name_a, const Shape& a, const char* name_b,
                   const Shape& b) {
  std::ostringstream os;
  os << " (" << name_a << " " << a << ", " << name_b << " " << b << ")";
  return os.str();
}

// ConvOutSize with a message naming the op, the dimension and the shapes.
int64_t OutSize(const char* op, const char* dim, int64_t in, int64_t kernel,
                int64_t stride, int64_t pad, const std::string& shapes) {
  CHECK_GT(kernel, 0) << op << ": kernel " << dim << " must be positive, got "
                      << kernel << shapes;
  CHECK_GT(stride, 0) << op << ": stride " << dim << " must be positive, got "
                      << stride << shapes;
  CHECK_GE(pad, 0) << op << ": padding " << dim << " must be >= 0, got " << pad
                   << shapes;
  CHECK_GE(in + 2 * pad, kernel)
      << op << ": input " << dim << " " << in << " with padding " << pad
      << " is smaller than the kernel " << dim << " " << kernel
      << " (output size would be <= 0)" << shapes;
  return (in + 2 * pad - kernel) / stride + 1;
}

// The output positions o in [*lo, *hi) (clamped to [0, out)) for which
// o * stride + offset lies in [0, in).
void ValidRange(int64_t in, int64_t offset, int64_t stride, int64_t out,
                int64_t* lo, int64_t* hi) {
  int64_t l = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  int64_t h = in - 1 - offset < 0 ? 0 : (in - 1 - offset) / stride + 1;
  l = std::min(l, out);
  h = std::min(h, out);
  *lo = l;
  *hi = std::max(h, l);
}

// Geometry of one convolution, shared by the forward and backward kernels.
struct ConvGeometry {
  int64_t n, c, h, w;  // input
  int64_t oc, kh, kw;  // weight
  int64_t oh, ow;      // output
  int64_t sh, sw, ph, pw;

  int64_t InPlane() const { return c * h * w; }      // one image of x
  int64_t OutPlane() const { return oc * oh * ow; }  // one image of y
  int64_t Ohw() const { return oh * ow; }
  int64_t Ckk() const { return c * kh * kw; }  // im2col rows
  // 1x1 kernel, stride 1, no padding: x_n [C, H*W] is its own im2col.
  bool Direct() const {
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
  }
};

ConvGeometry MakeGeometry(const char* op, const Shape& x, const Shape& w,
                          const Conv2dParams& p) {
  const std::string shapes = Shapes("x", x, "w", w);
  CHECK_EQ(x[1], w[1]) << op << ": input has " << x[1]
                       << " channels but weight expects " << w[1] << shapes;
  ConvGeometry g;
  g.n = x[0];
  g.c = x[1];
  g.h = x[2];
  g.w = x[3];
  g.oc = w[0];
  g.kh = w[2];
  g.kw = w[3];
  g.sh = p.stride_h;
  g.sw = p.stride_w;
  g.ph = p.pad_h;
  g.pw = p.pad_w;
  g.oh = OutSize(op, "height", g.h, g.kh, g.sh, g.ph, shapes);
  g.ow = OutSize(op, "width", g.w, g.kw, g.sw, g.pw, shapes);
  return g;
}

void CheckGradOutput(const char* op, const Tensor& dy, const ConvGeometry& g) {
  const Shape expected{g.n, g.oc, g.oh, g.ow};
  CHECK(dy.shape() == expected)
      << op << ": dy has shape " << dy.shape() << " but the convolution of x ["
      << g.n << ", " << g.c << ", " << g.h << ", " << g.w << "] with w ["
      << g.oc << ", " << g.c << ", " << g.kh << ", " << g.kw << "] gives "
      << expected;
}

// Im2col, computed block by block as a GEMM right operand (GemmRhs), so the
// column matrix is never stored whole. Several images may sit side by side:
//
//   col [C*KH*KW, cn*OH*OW], row r = (c, a, b), column q = (image, i, j),
//   col[r, q] = x[image, c, i*sh - ph + a, j*sw - pw + b] (0 outside).
//
// With ih = i*sh - ph, iw = j*sw - pw and base = image*C*H*W + ih*W + iw
// (per column) and off = c*H*W + a*W + b (per row), element (r, q) is
// x[base + off] when 0 <= ih + a < H and 0 <= iw + b < W. On AVX-512 a row
// is written 16 columns at a time, with one masked load per run of
// consecutive addresses (a gather for groups of many short runs).

// The (image, i, j) of consecutive columns, walked without divisions.
struct PixelWalk {
  const ConvGeometry& g;
  int64_t image, i, j;
  PixelWalk(const ConvGeometry& geo, int64_t q)
      : g(geo),
        image(q / geo.Ohw()),
        i(q % geo.Ohw() / geo.ow),
        j(q % geo.ow) {}
  int32_t Ih() const { return static_cast<int32_t>(i * g.sh - g.ph); }
  int32_t Iw() const { return static_cast<int32_t>(j * g.sw - g.pw); }
  int32_t Base() const {
    return static_cast<int32_t>(image * g.InPlane() + Ih() * g.w + Iw());
  }
  void Next() {
    if (++j < g.ow) return;
    j = 0;
    if (++i < g.oh) return;
    i = 0;
    ++image;
  }
};

// The (c, a, b) of consecutive rows.
struct TapWalk {
  const ConvGeometry& g;
  int64_t c, a, b;
  TapWalk(const ConvGeometry& geo, int64_t r)
      : g(geo),
        c(r / (geo.kh * geo.kw)),
        a(r / geo.kw % geo.kh),
        b(r % geo.kw) {}
  int32_t Off() const { return static_cast<int32_t>((c * g.h + a) * g.w + b); }
  void Next() {
    if (++b < g.kw) return;
    b = 0;
    if (++a < g.kh) return;
    a = 0;
    ++c;
  }
};

constexpr int kLanes = 16;
constexpr int kMaxBlock = 1024;  // columns per Im2ColBlock table

// ih, iw and base of the columns of one block, read 16 lanes at a time.
struct Columns {
  alignas(64) int32_t ih[kMaxBlock], iw[kMaxBlock], base[kMaxBlock];
};

#ifdef __AVX512F__
// Kernels up to this size take the vector path of Im2ColBlock.
constexpr int kMaxTap = 16;
// Groups of up to this many runs of consecutive addresses are read with one
// masked load per run, others with a gather (~20 cycles here).
constexpr int kMaxRuns = 4;

// How one 16-column group reads a row of col: x[off + shift[t] + lane] for
// the lanes of run t.
struct GroupRuns {
  int runs;  // > kMaxRuns: gather
  __mmask16 mask[kMaxRuns];
  int32_t shift[kMaxRuns];
};

GroupRuns MakeGroupRuns(const int32_t* base, int64_t n) {
  // Lane t starts a run unless base[t] == base[t - 1] + 1 (lane 0 always).
  const __m512i b = _mm512_load_si512(base);
  const __m512i prev = _mm512_alignr_epi32(b, _mm512_set1_epi32(0), 15);
  uint32_t starts = (_mm512_cmpneq_epi32_mask(
                         b, _mm512_add_epi32(prev, _mm512_set1_epi32(1))) |
                     1u) &
                    ((1u << n) - 1u);
  GroupRuns g{__builtin_popcount(starts), {0, 0, 0, 0}, {0, 0, 0, 0}};
  if (g.runs > kMaxRuns) return g;
  for (int r = 0; r < g.runs; ++r) {
    const int s = __builtin_ctz(starts);
    starts &= starts - 1;
    const int e = starts != 0 ? __builtin_ctz(starts) : static_cast<int>(n);
    g.mask[r] = static_cast<__mmask16>(((1u << e) - 1u) & ~((1u << s) - 1u));
    g.shift[r] = base[s] - s;
  }
  return g;
}
#endif

// Rows [r0, r0 + rn) x columns [q0, q0 + qn) of col to
// dst[(r - r0) * ld + (q - q0)]; `x` is the first image of the group.
void Im2ColBlock(const ConvGeometry& g, const float* __restrict x, int64_t r0,
                 int64_t rn, int64_t q0, int64_t qn, float* __restrict dst,
                 int64_t ld) {
  if (qn > kMaxBlock) {  // the tables below hold kMaxBlock columns
    for (int64_t q = 0; q < qn; q += kMaxBlock) {
      Im2ColBlock(g, x, r0, rn, q0 + q, std::min<int64_t>(kMaxBlock, qn - q),
                  dst + q, ld);
    }
    return;
  }
  // The tables hold 32-bit offsets from x.
  CHECK_LE(((q0 + qn - 1) / g.Ohw() + 1) * g.InPlane(),
           std::numeric_limits<int32_t>::max())
      << "im2col: images side by side exceed 2^31 floats";
  Columns col;
  PixelWalk px(g, q0);
  for (int64_t q = 0; q < qn; ++q, px.Next()) {
    col.ih[q] = px.Ih();
    col.iw[q] = px.Iw();
    col.base[q] = px.Base();
  }
  const int32_t h = static_cast<int32_t>(g.h), w = static_cast<int32_t>(g.w);
  TapWalk tap(g, r0);
#ifdef __AVX512F__
  // Compiled for AVX-512 builds; run unless DIVE_ISA asks for a lower path.
  if (ActiveIsa() >= Isa::kAvx512 && g.kh <= kMaxTap && g.kw <= kMaxTap) {
    // Per 16-column group: its lanes, its runs, and which lanes read the
    // image for each kernel row a (0 <= ih + a < h) and column b.
    constexpr int kGroups = kMaxBlock / kLanes;
    __mmask16 lanes[kGroups], in_a[kMaxTap][kGroups], in_b[kMaxTap][kGroups];
    GroupRuns runs[kGroups];
    const int64_t groups = (qn + kLanes - 1) / kLanes;
    int max_runs = 0;
    for (int64_t gi = 0; gi < groups; ++gi) {
      const int64_t q = gi * kLanes, n = std::min<int64_t>(kLanes, qn - q);
      lanes[gi] = static_cast<__mmask16>((1u << n) - 1u);
      runs[gi] = MakeGroupRuns(col.base + q, n);
      max_runs = std::max(max_runs, runs[gi].runs);
      const __m512i ih = _mm512_load_si512(col.ih + q);
      const __m512i iw = _mm512_load_si512(col.iw + q);
      // Unsigned compares: negative coordinates wrap to large values.
      for (int a = 0; a < g.kh; ++a) {
        in_a[a][gi] = _mm512_mask_cmplt_epu32_mask(
            lanes[gi], _mm512_add_epi32(ih, _mm512_set1_epi32(a)),
            _mm512_set1_epi32(h));
      }
      for (int b = 0; b < g.kw; ++b) {
        in_b[b][gi] = _mm512_cmplt_epu32_mask(
            _mm512_add_epi32(iw, _mm512_set1_epi32(b)), _mm512_set1_epi32(w));
      }
    }
    // Groups of several runs all do the same number of masked loads (runs
    // beyond a group's own have empty masks): no branch on each group's
    // pattern.
    const int loads = std::min(max_runs, kMaxRuns);
    for (int64_t r = 0; r < rn; ++r, tap.Next()) {
      const __mmask16* ma = in_a[tap.a];
      const __mmask16* mb = in_b[tap.b];
      const float* xo = x + tap.Off();
      float* out = dst + r * ld;
      for (int64_t gi = 0; gi < groups; ++gi) {
        const GroupRuns& gr = runs[gi];
        const __mmask16 inside = ma[gi] & mb[gi];
        __m512 val = _mm512_setzero_ps();
        if (gr.runs == 1) {  // "same" convolutions: runs span output rows
          val = _mm512_maskz_loadu_ps(inside, xo + gr.shift[0]);
        } else if (gr.runs > kMaxRuns) {
          val = _mm512_mask_i32gather_ps(
              val, inside, _mm512_load_si512(col.base + gi * kLanes), xo, 4);
        } else {
          for (int t = 0; t < loads; ++t) {
            val = _mm512_mask_loadu_ps(val, inside & gr.mask[t],
                                       xo + gr.shift[t]);
          }
        }
        _mm512_mask_storeu_ps(out + gi * kLanes, lanes[gi], val);
      }
    }
    return;
  }
#endif
  for (int64_t r = 0; r < rn; ++r, tap.Next()) {
    const auto a = static_cast<uint32_t>(tap.a),
               b = static_cast<uint32_t>(tap.b);
    for (int64_t q = 0; q < qn; ++q) {
      const bool inside =
          static_cast<uint32_t>(col.ih[q]) + a < static_cast<uint32_t>(h) &&
          static_cast<uint32_t>(col.iw[q]) + b < static_cast<uint32_t>(w);
      dst[r * ld + q] = inside ? x[col.base[q] + tap.Off()] : 0.0f;
    }
  }
}

// B[r, image * hw + t] = base[image * stride + r * hw + t]: planes side by
// side. Writes rows [r0, r0 + rn) x columns [q0, q0 + qn) of B to
// dst[(r - r0) * ld + (q - q0)].
void PlanesBlock(const float* base, int64_t stride, int64_t hw, int64_t r0,
                 int64_t rn, int64_t q0, int64_t qn, float* dst, int64_t ld) {
  for (int64_t r = 0; r < rn; ++r) {
    float* __restrict out = dst + r * ld;
    for (int64_t q = q0; q < q0 + qn;) {
      const int64_t image = q / hw, t = q % hw;
      const int64_t len = std::min(hw - t, q0 + qn - q);
      const float* __restrict src = base + image * stride + (r0 + r) * hw + t;
      for (int64_t u = 0; u < len; ++u) out[q - q0 + u] = src[u];
      q += len;
    }
  }
}

// The GemmRhs of planes side by side (dy [N, OC, OH*OW] as [OC, N*OH*OW]).
auto PlanesRhs(const float* base, int64_t stride, int64_t hw) {
  return [=](int64_t r0, int64_t rn, int64_t q0, int64_t qn, float* dst,
             int64_t ld) {
    PlanesBlock(base, stride, hw, r0, rn, q0, qn, dst, ld);
  };
}

// The GemmRhs of col for images x, x + InPlane, ... (the GEMMs ask for
// blocks of 64 columns, GemmNT for 1024). A 1x1 convolution with stride 1
// and no padding is its own im2col: its planes are copied as they are.
auto Im2ColRhs(const ConvGeometry& g, const float* x) {
  return [&g, x](int64_t r0, int64_t rn, int64_t q0, int64_t qn, float* dst,
                 int64_t ld) {
    if (g.Direct()) {
      PlanesBlock(x, g.InPlane(), g.Ohw(), r0, rn, q0, qn, dst, ld);
    } else {
      Im2ColBlock(g, x, r0, rn, q0, qn, dst, ld);
    }
  };
}

// The adjoint of im2col: dx [C, H, W] += the columns col [C*KH*KW, OH*OW]
// of one image scattered back; `ld` is the row stride of col (larger than
// OH*OW when several images sit side by side).
void Col2Im(const ConvGeometry& g, const float* __restrict col,
            float* __restrict dx, int64_t ld) {
  const int64_t h = g.h, w = g.w, oh = g.oh, ow = g.ow, sh = g.sh, sw = g.sw;
  for (int64_t c = 0; c < g.c; ++c) {
    float* __restrict dxc = dx + c * h * w;
    for (int64_t a = 0; a < g.kh; ++a) {
      int64_t ilo, ihi;
      ValidRange(h, a - g.ph, sh, oh, &ilo, &ihi);
      for (int64_t b = 0; b < g.kw; ++b) {
        const float* __restrict row = col + ((c * g.kh + a) * g.kw + b) * ld;
        int64_t jlo, jhi;
        ValidRange(w, b - g.pw, sw, ow, &jlo, &jhi);
        const int64_t off = b - g.pw;
        for (int64_t i = ilo; i < ihi; ++i) {
          const float* __restrict r = row + i * ow;
          float* __restrict dr = dxc + (i * sh - g.ph + a) * w;
          if (sw == 1) {
            for (int64_t j = jlo; j < jhi; ++j) dr[j + off] += r[j];
          } else {
            for (int64_t j = jlo; j < jhi; ++j) dr[j * sw + off] += r[j];
          }
        }
      }
    }
  }
}

// Parallel over the batch only when there are enough images for every
// thread; otherwise images run one after another and the GEMM itself may use
// the threads (Eigen parallelizes a GEMM called outside a parallel region).
bool BatchParallel(int64_t n) { return n > 1 && n >= omp_get_max_threads(); }

// The sum of p[0..n) in double. Eight independent partial sums let the
// compiler vectorize without reassociating.
double SumDouble(const float* p, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += p[i + k];
  }
  double tail = 0.0;
  for (; i < n; ++i) tail += p[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) +
         ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

// Scratch memory from the tensor allocator's cache, so that a training loop's
// steady state allocates nothing.
Tensor Scratch(int64_t size) {
  return Tensor::Empty({std::max<int64_t>(size, 1)});
}

// ---- Several images per GEMM ------------------------------------------------
//
// The GEMM computes C in tiles of GemmTileColumns() (64) columns, so one GEMM
// per image wastes the padding of its last tile: ResNet's 12x12 maps fill
// 144 of 192 columns, its 3x3 maps 9 of 64. The kernels may instead lay the
// columns of `cs` images side by side, [CKK, cs*OH*OW], and run one GEMM per
// chunk of images (scattering or gathering the [OC, cs*OH*OW] side to and
// from the NCHW layout); ChunkSize picks cs.

// Upper bound on a chunk's column buffer, in floats (16 MiB).
constexpr int64_t kChunkMaxColFloats = int64_t{4} << 20;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The most images a chunk may hold: the batch, within kChunkMaxColFloats of
// columns [C*KH*KW, images*OH*OW].
int64_t MaxChunkImages(const ConvGeometry& g) {
  return std::min(
      g.n, std::max<int64_t>(1, kChunkMaxColFloats /
                                    std::max<int64_t>(1, g.Ckk() * g.Ohw())));
}

// The size of the fewest chunks of at most cs of n images, balanced.
int64_t BalancedChunk(int64_t n, int64_t cs) {
  return CeilDiv(n, CeilDiv(n, cs));
}

// Images per GEMM whose columns are the output positions (forward and input
// gradient), for GEMMs of `rows` rows: the cs that gives the busiest thread
// the fewest tile rows (column tiles x rows), the smallest such cs on ties
// (1: one GEMM per image).
int64_t ChunkSize(const ConvGeometry& g, int64_t rows) {
  const int64_t ohw = g.Ohw(), tile = GemmTileColumns();
  if (g.n <= 1 || ohw <= 0) return 1;
  const int64_t threads = omp_get_max_threads(), max_cs = MaxChunkImages(g);
  int64_t best = 1, best_cost = std::numeric_limits<int64_t>::max();
  for (int64_t cs = 1; cs <= max_cs; ++cs) {
    const int64_t chunks = CeilDiv(g.n, cs), cols = cs * ohw;
    const int64_t tiles = CeilDiv(cols, tile);
    // Chunks run in parallel when there is one per thread; otherwise each
    // GEMM splits its columns (wide C) or its rows between the threads.
    int64_t cost;
    if (chunks >= threads) {
      cost = CeilDiv(chunks, threads) * tiles * rows;
    } else if (cols >= rows) {
      cost = chunks * CeilDiv(tiles, threads) * rows;
    } else {
      cost = chunks * tiles * CeilDiv(rows, threads);
    }
    if (cost < best_cost) {
      best = cs;
      best_cost = cost;
    }
  }
  return BalancedChunk(g.n, best);
}

// Images per GEMM of the weight gradient, whose columns are the weights and
// whose images are summed over: maps under 1024 positions are grouped to
// about 1024 summed positions per GemmNT (its block along k; 1024 beat 768
// and 512 on AlexNet's and ResNet's layers), larger maps keep a GEMM each.
int64_t WeightChunkSize(const ConvGeometry& g) {
  constexpr int64_t kCols = 1024;
  const int64_t ohw = g.Ohw();
  if (g.n <= 1 || ohw <= 0 || ohw >= kCols) return 1;
  return BalancedChunk(g.n, std::min(CeilDiv(kCols, ohw), MaxChunkImages(g)));
}

// dy images [c0, c0 + cn) -> dyc [OC, cn*OH*OW] (image k at column k*OH*OW).
void GatherOut(const ConvGeometry& g, const float* __restrict dy, int64_t c0,
               int64_t cn, float* __restrict dyc) {
  const int64_t ohw = g.Ohw(), ld = cn * ohw;
  for (int64_t k = 0; k < cn; ++k) {
    const float* __restrict src = dy + (c0 + k) * g.OutPlane();
    for (int64_t o = 0; o < g.oc; ++o) {
      std::copy(src + o * ohw, src + (o + 1) * ohw, dyc + o * ld + k * ohw);
    }
  }
}

// Runs chunk(c0, cn, thread_slot) for every chunk of cs images of n, in
// parallel over chunks when there are enough of them for every thread (the
// slot is then the thread number), else one after another in slot 0 (and the
// GEMM itself may use the threads). Returns the number of slots used.
template <typename F>
int RunChunks(int64_t n, int64_t cs, const F& chunk) {
  const int64_t chunks = CeilDiv(n, cs);
  if (BatchParallel(chunks)) {
    const int threads = omp_get_max_threads();
    const MatmulPrecision precision = GetMatmulPrecision();
#pragma omp parallel num_threads(threads)
    {
      const ScopedMatmulPrecision inherited(precision);
      const int slot = omp_get_thread_num();
#pragma omp for schedule(static)
      for (int64_t i = 0; i < chunks; ++i) {
        chunk(i * cs, std::min(cs, n - i * cs), slot);
      }
    }
    return threads;
  }
  for (int64_t i = 0; i < chunks; ++i) {
    chunk(i * cs, std::min(cs, n - i * cs), 0);
  }
  return 1;
}

// Per-slot scratch buffers, allocated lazily by the slot's own thread.
class SlotBuffers {
 public:
  explicit SlotBuffers(int64_t size)
      : size_(size), bufs_(static_cast<size_t>(omp_get_max_threads())) {}
  float* Get(int slot) {
    auto& b = bufs_[static_cast<size_t>(slot)];
    if (!b.defined()) b = Scratch(size_);
    return b.data();
  }

 private:
  int64_t size_;
  std::vector<Tensor> bufs_;
};

// Runs image(n, col) for every image of the batch, in parallel over the
// batch when it has an image per thread, each thread with its own im2col
// buffer of `col_size` floats.
template <typename F>
void ForEachImage(int64_t batch, int64_t col_size, const F& image) {
  if (BatchParallel(batch)) {
    const MatmulPrecision precision = GetMatmulPrecision();
#pragma omp parallel
    {
      const ScopedMatmulPrecision inherited(precision);
      Tensor col = Scratch(col_size);
#pragma omp for schedule(static)
      for (int64_t n = 0; n < batch; ++n) image(n, col.data());
    }
  } else {
    Tensor col = Scratch(col_size);
    for (int64_t n = 0; n < batch; ++n) image(n, col.data());
  }
}

}  // namespace

int64_t ConvOutSize(int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  return OutSize("ConvOutSize", "size", in, kernel, stride, pad, "");
}

Tensor Conv2dForward(const Tensor& x_in, const Tensor& w_in,
                     const Tensor& bias_in, const Conv2dParams& p) {
  static constexpr char kOp[] = "Conv2dForward";
  CheckFloat4D(kOp, "x", x_in);
  CheckFloat4D(kOp, "w", w_in);
  const ConvGeometry g = MakeGeometry(kOp, x_in.shape(), w_in.shape(), p);
  const Tensor x = x_in.Contiguous();
  const Tensor w = w_in.Contiguous();
  const float* pb = nullptr;
  Tensor bias;
  if (bias_in.defined()) {
    CHECK(bias_in.dtype() == DType::kFloat32)
        << kOp << ": bias must be float32, got " << DTypeName(bias_in.dtype());
    CHECK(bias_in.rank() == 1 && bias_in.dim(0) == g.oc)
        << kOp << ": bias has shape " << bias_in.shape() << " but weight has "
        << g.oc << " output channels"
        << Shapes("w", w.shape(), "bias", bias_in.shape());
    bias = bias_in.Contiguous();
    pb = bias.data();
  }

  Tensor y = Tensor::Empty({g.n, g.oc, g.oh, g.ow});
  const float* px = x.data();
  float* py = y.data();
  const int64_t ohw = g.Ohw();
  // The weights [OC, CKK], packed once for every image (a buffer of this
  // thread's, shared by the reference with the threads of the batch loop).
  thread_local GemmLhs packed;
  GemmLhs& weights = packed;
  weights.Pack(false, g.oc, g.Ckk(), w.data(), g.Ckk());

  const int64_t cs = ChunkSize(g, g.oc);
  if (cs > 1) {
    SlotBuffers outs(g.oc * cs * ohw);
    RunChunks(g.n, cs, [&](int64_t c0, int64_t cn, int slot) {
      float* out = outs.Get(slot);
      const int64_t ld = cn * ohw;
      // out [OC, cn*OH*OW] = w [OC, CKK] * col [CKK, cn*OH*OW].
      Gemm(weights, ld, Im2ColRhs(g, px + c0 * g.InPlane()), 0.0f, out, ld);
      for (int64_t k = 0; k < cn; ++k) {
        float* __restrict yn = py + (c0 + k) * g.OutPlane();
        for (int64_t o = 0; o < g.oc; ++o) {
          const float* __restrict src = out + o * ld + k * ohw;
          float* __restrict dst = yn + o * ohw;
          const float v = pb != nullptr ? pb[o] : 0.0f;
          for (int64_t j = 0; j < ohw; ++j) dst[j] = src[j] + v;
        }
      }
    });
    return y;
  }

  ForEachImage(g.n, 0, [&](int64_t n, float*) {
    float* yn = py + n * g.OutPlane();
    // y_n [OC, OH*OW] = w [OC, CKK] * col [CKK, OH*OW].
    Gemm(weights, ohw, Im2ColRhs(g, px + n * g.InPlane()), 0.0f, yn, ohw);
    if (pb != nullptr) {
      for (int64_t o = 0; o < g.oc; ++o) {
        float* r = yn + o * ohw;
        const float v = pb[o];
        for (int64_t j = 0; j < ohw; ++j) r[j] += v;
      }
    }
  });
  return y;
}

Tensor Conv2dBackwardInput(const Tensor& dy_in, const Tensor& w_in,
                           const Shape& x_shape, const Conv2dParams& p) {
  static constexpr char kOp[] = "Conv2dBackwardInput";
  CheckFloat4D(kOp, "dy", dy_in);
  CheckFloat4D(kOp, "w", w_in);
  CheckShape4D(kOp, "x_shape", x_shape);
  const ConvGeometry g = MakeGeometry(kOp, x_shape, w_in.shape(), p);
  CheckGradOutput(kOp, dy_in, g);
  const Tensor dy = dy_in.Contiguous();
  const Tensor w = w_in.Contiguous();

  const bool direct = g.Direct();
  if (!direct && g.sh == 1 && g.sw == 1 && g.ph < g.kh && g.pw < g.kw &&
      g.c >= 16) {
    // With stride 1 the input gradient is itself a convolution: dy, padded
    // by k - 1 - p, with the kernels flipped and in/out channels swapped.
    // The forward path computes it without a column buffer or col2im. Its
    // GEMM has C rows, too few below 16 to pay for the im2col of dy
    // (LeNet's 6-channel layer: 1.4x slower).
    Tensor flipped = Tensor::Empty({g.c, g.oc, g.kh, g.kw});
    const float* pw = w.data();
    float* pf = flipped.data();
    const int64_t taps = g.kh * g.kw;
#pragma omp parallel for schedule(static) if (g.c * g.oc * taps > (1 << 16))
    for (int64_t c = 0; c < g.c; ++c) {
      for (int64_t o = 0; o < g.oc; ++o) {
        for (int64_t t = 0; t < taps; ++t) {
          pf[(c * g.oc + o) * taps + t] =
              pw[(o * g.c + c) * taps + taps - 1 - t];
        }
      }
    }
    Conv2dParams q;
    q.pad_h = g.kh - 1 - g.ph;
    q.pad_w = g.kw - 1 - g.pw;
    return Conv2dForward(dy, flipped, Tensor(), q);
  }
  const int64_t cs = ChunkSize(g, g.Ckk());
  Tensor dx =
      direct && cs == 1 ? Tensor::Empty(x_shape) : Tensor::Zeros(x_shape);
  const float* pdy = dy.data();
  float* pdx = dx.data();
  const int64_t ohw = g.Ohw(), ckk = g.Ckk();
  // w^T [CKK, OC], packed once for every image (as in Conv2dForward).
  thread_local GemmLhs packed;
  GemmLhs& weights_t = packed;
  weights_t.Pack(true, ckk, g.oc, w.data(), ckk);

  if (cs > 1) {
    SlotBuffers cols(ckk * cs * ohw);
    RunChunks(g.n, cs, [&](int64_t c0, int64_t cn, int slot) {
      float* col = cols.Get(slot);
      const int64_t ld = cn * ohw;
      // dcol [CKK, cn*OH*OW] = w^T [CKK, OC] * dy [OC, cn*OH*OW].
      Gemm(weights_t, ld, PlanesRhs(pdy + c0 * g.OutPlane(), g.OutPlane(), ohw),
           0.0f, col, ld);
      for (int64_t k = 0; k < cn; ++k) {
        Col2Im(g, col + k * ohw, pdx + (c0 + k) * g.InPlane(), ld);
      }
    });
    return dx;
  }

  ForEachImage(g.n, direct ? 0 : ckk * ohw, [&](int64_t n, float* col) {
    float* dxn = pdx + n * g.InPlane();
    // dcol [CKK, OH*OW] = w^T [CKK, OC] * dy_n [OC, OH*OW].
    Gemm(weights_t, ohw, PlanesRhs(pdy + n * g.OutPlane(), g.OutPlane(), ohw),
         0.0f, direct ? dxn : col, ohw);
    if (!direct) Col2Im(g, col, dxn, ohw);
  });
  return dx;
}

Tensor Conv2dBackwardWeight(const Tensor& dy_in, const Tensor& x_in,
                            const Shape& w_shape, const Conv2dParams& p) {
  static constexpr char kOp[] = "Conv2dBackwardWeight";
  CheckFloat4D(kOp, "dy", dy_in);
  CheckFloat4D(kOp, "x", x_in);
  CheckShape4D(kOp, "w_shape", w_shape);
  const ConvGeometry g = MakeGeometry(kOp, x_in.shape(), w_shape, p);
  CheckGradOutput(kOp, dy_in, g);
  const Tensor dy = dy_in.Contiguous();
  const Tensor x = x_in.Contiguous();

  Tensor dw = Tensor::Zeros(w_shape);
  const float* pdy = dy.data();
  const float* px = x.data();
  float* pdw = dw.data();
  const int64_t ohw = g.Ohw(), ckk = g.Ckk(), wsize = g.oc * ckk;

  // acc [OC, CKK] += dy [OC, images*OH*OW] * col^T [images*OH*OW, CKK], with
  // dy of the images given as one [OC, images*OH*OW] matrix.
  auto accumulate = [&](const float* dys, const float* xs, int64_t images,
                        float* acc) {
    const int64_t cols = images * ohw;
    GemmNT(g.oc, ckk, cols, dys, cols, Im2ColRhs(g, xs), 1.0f, acc, ckk);
  };

  // Each thread sums its images into its own partial dw (slot 0: dw itself);
  // the partials are added at the end (dw is small next to the columns).
  const int threads = omp_get_max_threads();
  Tensor partial;
  auto slot_acc = [&](int slot) {
    return slot == 0 ? pdw : partial.data() + (slot - 1) * wsize;
  };
  int used = 1;
  const int64_t cs = WeightChunkSize(g);
  if (cs > 1) {
    SlotBuffers dys(g.oc * cs * ohw);
    if (BatchParallel(CeilDiv(g.n, cs))) {
      partial = Tensor::Zeros({threads - 1, wsize});
    }
    used = RunChunks(g.n, cs, [&](int64_t c0, int64_t cn, int slot) {
      float* dyc = dys.Get(slot);
      GatherOut(g, pdy, c0, cn, dyc);
      accumulate(dyc, px + c0 * g.InPlane(), cn, slot_acc(slot));
    });
  } else if (BatchParallel(g.n)) {
    partial = Tensor::Zeros({threads - 1, wsize});
    used = threads;
    const MatmulPrecision precision = GetMatmulPrecision();
#pragma omp parallel num_threads(threads)
    {
      const ScopedMatmulPrecision inherited(precision);
      float* acc = slot_acc(omp_get_thread_num());
#pragma omp for schedule(static)
      for (int64_t n = 0; n < g.n; ++n) {
        accumulate(pdy + n * g.OutPlane(), px + n * g.InPlane(), 1, acc);
      }
    }
  } else {
    for (int64_t n = 0; n < g.n; ++n) {
      accumulate(pdy + n * g.OutPlane(), px + n * g.InPlane(), 1, pdw);
    }
  }
  if (used > 1) {
    const float* src = partial.data();
#pragma omp parallel for schedule(static) if (wsize > (1 << 14))
    for (int64_t i = 0; i < wsize; ++i) {
      for (int t = 1; t < used; ++t) pdw[i] += src[(t - 1) * wsize + i];
    }
  }
  return dw;
}

Tensor Conv2dBackwardBias(const Tensor& dy_in) {
  static constexpr char kOp[] = "Conv2dBackwardBias";
  CheckFloat4D(kOp, "dy", dy_in);
  const Tensor dy = dy_in.Contiguous();
  const int64_t n = dy.dim(0), oc = dy.dim(1), hw = dy.dim(2) * dy.dim(3);
  Tensor db = Tensor::Empty({oc});
  const float* pdy = dy.data();
  float* pdb = db.data();
#pragma omp parallel for schedule(static) if (oc * n * hw > 32768)
  for (int64_t o = 0; o < oc; ++o) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      sum += SumDouble(pdy + (i * oc + o) * hw, hw);
    }
    pdb[o] = static_cast<float>(sum);
  }
  return db;
}

// ---- Pooling ----------------------------------------------------------------

namespace {

struct PoolGeometry {
  int64_t planes, h, w, oh, ow;
  int64_t kh, kw, sh, sw, ph, pw;
};

PoolGeometry MakePoolGeometry(const char* op, const Shape& x,
                              const Pool2dParams& p) {
  CHECK_EQ(x.rank(), 4) << op << ": input must be 4-D (NCHW), got shape " << x;
  std::ostringstream os;
  os << " (x " << x << ", kernel " << p.kernel_h << "x" << p.kernel_w
     << ", stride " << p.stride_h << "x" << p.stride_w << ", padding "
     << p.pad_h << "x" << p.pad_w << ")";
  const std::string shapes = os.str();
  PoolGeometry g;
  g.planes = x[0] * x[1];
  g.h = x[2];
  g.w = x[3];
  g.kh = p.kernel_h;
  g.kw = p.kernel_w;
  g.sh = p.stride_h;
  g.sw = p.stride_w;
  g.ph = p.pad_h;
  g.pw = p.pad_w;
  g.oh = OutSize(op, "height", g.h, g.kh, g.sh, g.ph, shapes);
  g.ow = OutSize(op, "width", g.w, g.kw, g.sw, g.pw, shapes);
  CHECK(2 * g.ph <= g.kh && 2 * g.pw <= g.kw)
      << op << ": padding must be at most half the kernel size" << shapes;
  return g;
}

// Windows that tile the input without overlap or padding (2x2, stride 2):
// every input belongs to at most one window.
bool Tiling(const PoolGeometry& g) {
  return g.ph == 0 && g.pw == 0 && g.kh == g.sh && g.kw == g.sw;
}

void CheckPoolGrad(const char* op, const Tensor& dy, const Shape& x_shape,
                   const PoolGeometry& g) {
  const Shape expected{x_shape[0], x_shape[1], g.oh, g.ow};
  CHECK(dy.shape() == expected)
      << op << ": dy has shape " << dy.shape() << " but pooling x " << x_shape
      << " gives " << expected;
}

}  // namespace

namespace {

// Folds one kernel column of one input row into a row of max-pool outputs:
// output j sees x_row[j * stride + offset] for j in [lo, hi). `row` is the
// row's flat index in its plane. NaN wins, as in PyTorch. Branch-free (the
// comparison is unpredictable on real data) and alias-free.
void MaxPoolRow(const float* __restrict plane, int64_t row, int64_t offset,
                int64_t stride, int64_t lo, int64_t hi, float* __restrict y,
                int64_t* __restrict idx) {
  const float* __restrict x = plane + row;
  for (int64_t j = lo; j < hi; ++j) {
    const int64_t iw = j * stride + offset;
    const float v = x[iw];
    const float cur = y[j];
    const bool take = (v > cur) | std::isnan(v);
    y[j] = take ? v : cur;
    idx[j] = take ? row + iw : idx[j];
  }
}

#ifdef __AVX512F__
// One output row of max pooling with stride 1 or 2, 16 outputs at a time:
// each output's window is scanned in (ih, iw) order in registers and the
// maximum and its index written once. The same rule as MaxPoolRow: a larger
// value or a NaN takes over; an all-padding window keeps -inf and the index
// of its first valid input.
void MaxPoolRowVector(const PoolGeometry& g, const float* __restrict plane,
                      int64_t h0, int64_t h1, float* __restrict y,
                      int64_t* __restrict idx) {
  const __m512i lane =
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  // Even elements of two vectors: x[2t] for t < 16 from x[0 : 32].
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20,
                                          22, 24, 26, 28, 30);
  const __m512i w = _mm512_set1_epi32(static_cast<int32_t>(g.w));
  for (int64_t j0 = 0; j0 < g.ow; j0 += 16) {
    const auto lanes =
        static_cast<__mmask16>((1u << std::min<int64_t>(16, g.ow - j0)) - 1u);
    // Input column of each output's first kernel column.
    const __m512i iw0 = _mm512_sub_epi32(
        _mm512_mullo_epi32(
            _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int32_t>(j0))),
            _mm512_set1_epi32(static_cast<int32_t>(g.sw))),
        _mm512_set1_epi32(static_cast<int32_t>(g.pw)));
    __m512 best = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    __m512i where =
        _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(h0 * g.w)),
                         _mm512_max_epi32(iw0, _mm512_setzero_si512()));
    for (int64_t ih = h0; ih < h1; ++ih) {
      const float* row = plane + ih * g.w;
      const __m512i row_start =
          _mm512_set1_epi32(static_cast<int32_t>(ih * g.w));
      for (int64_t b = 0; b < g.kw; ++b) {
        const __m512i iw =
            _mm512_add_epi32(iw0, _mm512_set1_epi32(static_cast<int32_t>(b)));
        // Unsigned compare: negative columns wrap to large values.
        const __mmask16 valid = _mm512_mask_cmplt_epu32_mask(lanes, iw, w);
        const int64_t first = j0 * g.sw - g.pw + b;  // column of lane 0
        __m512 v;
        if (g.sw == 1) {
          v = _mm512_maskz_loadu_ps(valid, row + first);
        } else {  // lane t reads row[first + 2t]: even elements of 32
          const uint32_t wide = _pdep_u32(valid, 0x55555555u);
          const __m512 lo = _mm512_maskz_loadu_ps(
              static_cast<__mmask16>(wide & 0xFFFFu), row + first);
          const __m512 hi = _mm512_maskz_loadu_ps(
              static_cast<__mmask16>(wide >> 16), row + first + 16);
          v = _mm512_permutex2var_ps(lo, evens, hi);
        }
        const __mmask16 take =
            _mm512_mask_cmp_ps_mask(valid, v, best, _CMP_GT_OQ) |
            _mm512_mask_cmp_ps_mask(valid, v, v, _CMP_UNORD_Q);
        best = _mm512_mask_mov_ps(best, take, v);
        where =
            _mm512_mask_mov_epi32(where, take, _mm512_add_epi32(row_start, iw));
      }
    }
    _mm512_mask_storeu_ps(y + j0, lanes, best);
    if (idx != nullptr) {
      _mm512_mask_storeu_epi64(
          idx + j0, static_cast<__mmask8>(lanes),
          _mm512_cvtepi32_epi64(_mm512_castsi512_si256(where)));
      _mm512_mask_storeu_epi64(
          idx + j0 + 8, static_cast<__mmask8>(lanes >> 8),
          _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(where, 1)));
    }
  }
}
#endif

}  // namespace

Tensor MaxPool2dForward(const Tensor& x_in, const Pool2dParams& p,
                        Tensor* argmax) {
  static constexpr char kOp[] = "MaxPool2dForward";
  CheckFloat4D(kOp, "x", x_in);
  const PoolGeometry g = MakePoolGeometry(kOp, x_in.shape(), p);
  const Tensor x = x_in.Contiguous();
  const Shape out_shape{x.dim(0), x.dim(1), g.oh, g.ow};
  Tensor y = Tensor::Empty(out_shape);
  Tensor idx;
  int64_t* pidx = nullptr;
  if (argmax != nullptr) {
    idx = Tensor::Empty(out_shape, DType::kInt64);
    pidx = idx.data<int64_t>();
  }
  const float* px = x.data();
  float* py = y.data();
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  [[maybe_unused]] const bool avx512 = ActiveIsa() >= Isa::kAvx512;
#pragma omp parallel if (g.planes * out_plane > 4096)
  {
    // Indices go here when the caller does not want them.
    std::vector<int64_t> scratch(pidx == nullptr ? g.ow : 0);
#pragma omp for schedule(static)
    for (int64_t q = 0; q < g.planes; ++q) {
      const float* xq = px + q * in_plane;
      // Row by row: every output of row i starts at -inf (with the index of
      // its first valid input), then sees its window's inputs in (ih, iw)
      // order, one loop over the whole output row per (ih, kernel column).
      for (int64_t i = 0; i < g.oh; ++i) {
        float* yr = py + q * out_plane + i * g.ow;
        int64_t* ir =
            pidx == nullptr ? scratch.data() : pidx + q * out_plane + i * g.ow;
        const int64_t h0 = std::max<int64_t>(i * g.sh - g.ph, 0);
        const int64_t h1 = std::min(i * g.sh - g.ph + g.kh, g.h);
#ifdef __AVX512F__
        if (avx512 && g.sw <= 2) {
          MaxPoolRowVector(g, xq, h0, h1, yr, pidx == nullptr ? nullptr : ir);
          continue;
        }
#endif
        for (int64_t j = 0; j < g.ow; ++j) {
          yr[j] = -std::numeric_limits<float>::infinity();
          ir[j] = h0 * g.w + std::max<int64_t>(j * g.sw - g.pw, 0);
        }
        for (int64_t ih = h0; ih < h1; ++ih) {
          for (int64_t b = 0; b < g.kw; ++b) {
            int64_t jlo, jhi;
            ValidRange(g.w, b - g.pw, g.sw, g.ow, &jlo, &jhi);
            MaxPoolRow(xq, ih * g.w, b - g.pw, g.sw, jlo, jhi, yr, ir);
          }
        }
      }
    }
  }
  if (argmax != nullptr) *argmax = idx;
  return y;
}

Tensor MaxPool2dBackward(const Tensor& dy_in, const Tensor& argmax_in,
                         const Shape& x_shape) {
  static constexpr char kOp[] = "MaxPool2dBackward";
  CheckFloat4D(kOp, "dy", dy_in);
  CheckShape4D(kOp, "x_shape", x_shape);
  CHECK(argmax_in.defined() && argmax_in.dtype() == DType::kInt64)
      << kOp << ": argmax must be a defined int64 tensor";
  CHECK(argmax_in.shape() == dy_in.shape())
      << kOp << ": argmax has shape " << argmax_in.shape()
      << " but dy has shape " << dy_in.shape();
  CHECK(dy_in.dim(0) == x_shape[0] && dy_in.dim(1) == x_shape[1])
      << kOp << ": dy " << dy_in.shape() << " and x " << x_shape
      << " differ in batch or channels";
  const Tensor dy = dy_in.Contiguous();
  const Tensor argmax = argmax_in.Contiguous();
  Tensor dx = Tensor::Zeros(x_shape);
  const int64_t planes = x_shape[0] * x_shape[1];
  const int64_t in_plane = x_shape[2] * x_shape[3];
  const int64_t out_plane = dy.dim(2) * dy.dim(3);
  const float* pdy = dy.data();
  const int64_t* pidx = argmax.data<int64_t>();
  float* pdx = dx.data();
#pragma omp parallel for schedule(static) if (planes * out_plane > 4096)
  for (int64_t q = 0; q < planes; ++q) {
    const float* dyq = pdy + q * out_plane;
    const int64_t* iq = pidx + q * out_plane;
    float* dxq = pdx + q * in_plane;
    for (int64_t k = 0; k < out_plane; ++k) {
      DCHECK(iq[k] >= 0 && iq[k] < in_plane)
          << kOp << ": argmax " << iq[k] << " outside a plane of " << in_plane;
      dxq[iq[k]] += dyq[k];
    }
  }
  return dx;
}

Tensor AvgPool2dForward(const Tensor& x_in, const Pool2dParams& p) {
  static constexpr char kOp[] = "AvgPool2dForward";
  CheckFloat4D(kOp, "x", x_in);
  const PoolGeometry g = MakePoolGeometry(kOp, x_in.shape(), p);
  const Tensor x = x_in.Contiguous();
  Tensor y = Tensor::Empty({x.dim(0), x.dim(1), g.oh, g.ow});
  const float* px = x.data();
  float* py = y.data();
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  const float scale = 1.0f / static_cast<float>(g.kh * g.kw);
  if (Tiling(g)) {
    // Each input read once: y[i, j] = scale * sum of its kh x kw tile.
#pragma omp parallel for schedule(static) if (g.planes * out_plane > 4096)
    for (int64_t q = 0; q < g.planes; ++q) {
      for (int64_t i = 0; i < g.oh; ++i) {
        const float* __restrict xr = px + q * in_plane + i * g.kh * g.w;
        float* __restrict yr = py + q * out_plane + i * g.ow;
        if (g.kw == 2) {  // LeNet's and most CNNs' 2x2 pooling
          for (int64_t j = 0; j < g.ow; ++j) {
            float sum = 0.0f;
            for (int64_t a = 0; a < g.kh; ++a) {
              sum += xr[a * g.w + 2 * j] + xr[a * g.w + 2 * j + 1];
            }
            yr[j] = sum * scale;
          }
        } else {
          for (int64_t j = 0; j < g.ow; ++j) {
            float sum = 0.0f;
            for (int64_t a = 0; a < g.kh; ++a) {
              for (int64_t b = 0; b < g.kw; ++b) {
                sum += xr[a * g.w + j * g.kw + b];
              }
            }
            yr[j] = sum * scale;
          }
        }
      }
    }
    return y;
  }
#pragma omp parallel for schedule(static) if (g.planes * out_plane > 4096)
  for (int64_t q = 0; q < g.planes; ++q) {
    const float* xq = px + q * in_plane;
    for (int64_t i = 0; i < g.oh; ++i) {
      float* yr = py + q * out_plane + i * g.ow;
      const int64_t h0 = std::max<int64_t>(i * g.sh - g.ph, 0);
      const int64_t h1 = std::min(i * g.sh - g.ph + g.kh, g.h);
      std::fill(yr, yr + g.ow, 0.0f);
      for (int64_t ih = h0; ih < h1; ++ih) {
        const float* xr = xq + ih * g.w;
        for (int64_t b = 0; b < g.kw; ++b) {
          int64_t jlo, jhi;
          ValidRange(g.w, b - g.pw, g.sw, g.ow, &jlo, &jhi);
          const int64_t off = b - g.pw;
          if (g.sw == 1) {
            for (int64_t j = jlo; j < jhi; ++j) yr[j] += xr[j + off];
          } else {
            for (int64_t j = jlo; j < jhi; ++j) yr[j] += xr[j * g.sw + off];
          }
        }
      }
      for (int64_t j = 0; j < g.ow; ++j) yr[j] *= scale;
    }
  }
  return y;
}

Tensor AvgPool2dBackward(const Tensor& dy_in, const Shape& x_shape,
                         const Pool2dParams& p) {
  static constexpr char kOp[] = "AvgPool2dBackward";
  CheckFloat4D(kOp, "dy", dy_in);
  CheckShape4D(kOp, "x_shape", x_shape);
  const PoolGeometry g = MakePoolGeometry(kOp, x_shape, p);
  CheckPoolGrad(kOp, dy_in, x_shape, g);
  const Tensor dy = dy_in.Contiguous();
  const bool tiling = Tiling(g);
  Tensor dx = tiling ? Tensor::Empty(x_shape) : Tensor::Zeros(x_shape);
  const float* pdy = dy.data();
  float* pdx = dx.data();
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  const float scale = 1.0f / static_cast<float>(g.kh * g.kw);
  if (tiling) {
    // Each input written once: its tile's scaled gradient (0 for the rows
    // and columns past the last whole tile).
#pragma omp parallel for schedule(static) if (g.planes * out_plane > 4096)
    for (int64_t q = 0; q < g.planes; ++q) {
      float* dxq = pdx + q * in_plane;
      for (int64_t i = 0; i < g.oh; ++i) {
        const float* __restrict dyr = pdy + q * out_plane + i * g.ow;
        for (int64_t a = 0; a < g.kh; ++a) {
          float* __restrict dxr = dxq + (i * g.kh + a) * g.w;
          if (g.kw == 2) {
            for (int64_t j = 0; j < g.ow; ++j) {
              dxr[2 * j] = dxr[2 * j + 1] = dyr[j] * scale;
            }
          } else {
            for (int64_t j = 0; j < g.ow; ++j) {
              for (int64_t b = 0; b < g.kw; ++b) {
                dxr[j * g.kw + b] = dyr[j] * scale;
              }
            }
          }
          std::fill(dxr + g.ow * g.kw, dxr + g.w, 0.0f);
        }
      }
      std::fill(dxq + g.oh * g.kh * g.w, dxq + in_plane, 0.0f);
    }
    return dx;
  }
#pragma omp parallel if (g.planes * out_plane > 4096)
  {
    std::vector<float> scaled(g.ow);
#pragma omp for schedule(static)
    for (int64_t q = 0; q < g.planes; ++q) {
      float* dxq = pdx + q * in_plane;
      for (int64_t i = 0; i < g.oh; ++i) {
        const float* dyr = pdy + q * out_plane + i * g.ow;
        for (int64_t j = 0; j < g.ow; ++j) scaled[j] = dyr[j] * scale;
        const int64_t h0 = std::max<int64_t>(i * g.sh - g.ph, 0);
        const int64_t h1 = std::min(i * g.sh - g.ph + g.kh, g.h);
        for (int64_t ih = h0; ih < h1; ++ih) {
          float* dxr = dxq + ih * g.w;
          for (int64_t b = 0; b < g.kw; ++b) {
            int64_t jlo, jhi;
            ValidRange(g.w, b - g.pw, g.sw, g.ow, &jlo, &jhi);
            // Within one kernel column the outputs write distinct inputs.
            for (int64_t j = jlo; j < jhi; ++j) {
              dxr[j * g.sw + b - g.pw] += scaled[j];
            }
          }
        }
      }
    }
  }
  return dx;
}

}  // namespace dive
