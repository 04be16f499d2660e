#include "tensor/qgemm.h"

#include <omp.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "tensor/cpu.h"
#include "tensor/qgemm_driver.h"
#include "tensor/qgemm_kernels.h"

namespace dive {
namespace qgemm_internal {
namespace {

// ---- The generic path: portable C++ on the quads layout ---------------------

constexpr int kGenericMr = 6;
constexpr int kGenericNr = 16;

// QTileEpilogue for one element, in the arithmetic the vector stores use.
void StoreScalar(int32_t s, const QTileEpilogue& e, int i, int j) {
  const int ch = e.channel_is_row ? i : j;
  // Wrapping int32 addition, as VPADDD's: the sum it gives is the exact
  // acc + bias (the driver bounds both).
  const int32_t v = static_cast<int32_t>(static_cast<uint32_t>(s) +
                                         static_cast<uint32_t>(e.offset[ch]));
  const int64_t at = i * e.ldc + j;
  switch (e.store) {
    case QStore::kInt32:
      static_cast<int32_t*>(e.c)[at] = v;
      return;
    case QStore::kFloat: {
      float f = static_cast<float>(static_cast<double>(v) * e.scale[ch]);
      if (e.relu && f < 0.0f) f = 0.0f;
      static_cast<float*>(e.c)[at] = f;
      return;
    }
    case QStore::kUint8: {
      const double lo = e.relu ? 0.0 : -e.zero_point;
      const double hi = 255.0 - e.zero_point;
      const double d =
          std::min(std::max(static_cast<double>(v) * e.scale[ch], lo), hi);
      // nearbyint in the default rounding mode: half to even.
      static_cast<uint8_t*>(e.c)[at] = static_cast<uint8_t>(
          static_cast<int32_t>(std::nearbyint(d)) + e.zero_point);
      return;
    }
  }
}

// R packed (r_offsets null), or read in place (quad row q at r +
// r_offsets[q]).
template <bool kLeftU8>
void GenericTile(int64_t k_steps, const void* l_panel, const uint8_t* r_base,
                 const int64_t* r_offsets, const QTileEpilogue& e, int mr,
                 int nr) {
  const uint8_t* l = static_cast<const uint8_t*>(l_panel);
  const uint8_t* r = r_base;
  int32_t acc[kGenericMr][kGenericNr] = {};
  for (int64_t q = 0; q < k_steps; ++q) {
    if (r_offsets != nullptr) r = r_base + r_offsets[q];
    for (int i = 0; i < kGenericMr; ++i) {
      for (int t = 0; t < 4; ++t) {
        const uint8_t lb = l[i * 4 + t];
        const int32_t lv = kLeftU8 ? lb : static_cast<int8_t>(lb);
        for (int j = 0; j < kGenericNr; ++j) {
          const uint8_t rb = r[j * 4 + t];
          const int32_t rv = kLeftU8 ? static_cast<int8_t>(rb) : rb;
          acc[i][j] += lv * rv;
        }
      }
    }
    l += 4 * kGenericMr;
    r += 4 * kGenericNr;
  }
  for (int i = 0; i < mr; ++i) {
    for (int j = 0; j < nr; ++j) StoreScalar(acc[i][j], e, i, j);
  }
}

template <bool kLeftU8>
void GenericKernel(int64_t k_steps, const void* l, const void* r,
                   const QTileEpilogue& e, int mr, int nr) {
  GenericTile<kLeftU8>(k_steps, l, static_cast<const uint8_t*>(r), nullptr, e,
                       mr, nr);
}

void GenericIndirectKernel(int64_t k_steps, const void* l, const uint8_t* r,
                           const int64_t* r_offsets, const QTileEpilogue& e,
                           int mr, int nr) {
  GenericTile<false>(k_steps, l, r, r_offsets, e, mr, nr);
}

}  // namespace

const PathInfo& PathOf(QGemmPath path) {
  // Each built on first use only: a kernel library's functions (even the
  // descriptor's) are compiled for its ISA and run only where it is present.
  switch (path) {
    case QGemmPath::kGeneric: {
      static const PathInfo p{
          {kGenericMr, kGenericNr, 4, &GenericKernel<true>,
           &GenericKernel<false>, nullptr, nullptr, &GenericIndirectKernel},
          Layout::kQuads};
      return p;
    }
    case QGemmPath::kAvx2: {
      static const PathInfo p{Avx2QKernel(), Layout::kPairs};
      return p;
    }
    case QGemmPath::kAvx2U7: {
      static const PathInfo p{Avx2U7QKernel(/*u8_within_127=*/false),
                              Layout::kQuads};
      return p;
    }
    case QGemmPath::kAvxVnni: {
      static const PathInfo p{AvxVnniQKernel(), Layout::kQuads};
      return p;
    }
    case QGemmPath::kAvx512Vnni: {
      static const PathInfo p{Avx512VnniQKernel(), Layout::kQuads};
      return p;
    }
    case QGemmPath::kAmx: {
      static const PathInfo p{
          AmxEmulatedQKernel != nullptr ? AmxEmulatedQKernel() : AmxQKernel(),
          Layout::kAmx};
      return p;
    }
  }
  LOG(FATAL) << "QGemmPath " << static_cast<int>(path);
}

const PathInfo& PathFor(QGemmPath path, bool within_127) {
  if (path == QGemmPath::kAvx2U7 && within_127) {
    static const PathInfo p{Avx2U7QKernel(/*u8_within_127=*/true),
                            Layout::kQuads};
    return p;
  }
  return PathOf(path);
}

bool AllWithin127(const uint8_t* p, int64_t rows, int64_t cols, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = p + r * ld;
    // Eight bytes at a time in four words (the compiler vectorizes it).
    uint64_t any[4] = {0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 32 <= cols; j += 32) {
      for (int t = 0; t < 4; ++t) {
        uint64_t word;
        std::memcpy(&word, row + j + 8 * t, 8);
        any[t] |= word;
      }
    }
    uint64_t all = any[0] | any[1] | any[2] | any[3];
    for (; j < cols; ++j) all |= row[j];
    if ((all & 0x8080808080808080ull) != 0) return false;
  }
  return true;
}

std::shared_ptr<uint8_t> AlignedBuffer(int64_t bytes) {
  void* p = std::aligned_alloc(64, static_cast<size_t>(RoundUp(bytes, 64)));
  CHECK(p != nullptr) << "int8 GEMM: out of memory for " << bytes << " bytes";
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), &std::free);
}

uint8_t* ThreadScratch(ScratchSlot slot, int64_t bytes) {
  struct Buffer {
    void* data = nullptr;
    int64_t bytes = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buffers[kScratchSlots];
  Buffer& b = buffers[slot];
  if (b.bytes < bytes) {
    std::free(b.data);
    b.data = std::aligned_alloc(64, static_cast<size_t>(RoundUp(bytes, 64)));
    CHECK(b.data != nullptr)
        << "int8 GEMM: out of memory for " << bytes << " bytes";
    b.bytes = bytes;
  }
  return static_cast<uint8_t*>(b.data);
}

template <typename T>
void PackLeftPanel(const PathInfo& path, const T* src, int64_t lds, int rows,
                   int64_t k, uint8_t* out) {
  const int64_t mr = path.kernel.mr, k_pad = path.KPad(k);
  std::memset(out, 0, path.LeftPanelBytes(k));
  for (int i = 0; i < rows; ++i) {
    const T* row = src + i * lds;
    switch (path.layout) {
      case Layout::kQuads:
        for (int64_t q = 0; q < k / 4; ++q) {
          std::memcpy(out + (q * mr + i) * 4, row + 4 * q, 4);
        }
        for (int64_t p = k / 4 * 4; p < k; ++p) {
          out[((p >> 2) * mr + i) * 4 + (p & 3)] = static_cast<uint8_t>(row[p]);
        }
        break;
      case Layout::kPairs: {
        int16_t* out16 = reinterpret_cast<int16_t*>(out);
        for (int64_t p = 0; p < k; ++p) {
          out16[((p >> 1) * mr + i) * 2 + (p & 1)] = row[p];
        }
        break;
      }
      case Layout::kAmx:
        std::memcpy(out + i * k_pad, row, k);
        break;
    }
  }
}

template <typename T>
void PackRightGroup(const PathInfo& path, const T* const* rows, int cols,
                    uint8_t* out) {
  const int nr = path.kernel.nr;
  if (path.layout == Layout::kPairs) {
    int16_t* out16 = reinterpret_cast<int16_t*>(out);
    for (int t = 0; t < 2; ++t) {
      const T* row = rows[t];
      for (int j = 0; j < cols; ++j) {
        out16[2 * j + t] = row != nullptr ? row[j] : 0;
      }
    }
    std::memset(out16 + 2 * cols, 0, (nr - cols) * 4);
    return;
  }
  int j = 0;
#if defined(__SSE2__)
  // Four rows of 16 bytes interleaved into 16 quads, through registers.
  if (rows[0] != nullptr && rows[1] != nullptr && rows[2] != nullptr &&
      rows[3] != nullptr) {
    for (; j + 16 <= cols; j += 16) {
      const auto load = [&](int t) {
        return _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[t] + j));
      };
      const __m128i r0 = load(0), r1 = load(1), r2 = load(2), r3 = load(3);
      const __m128i lo01 = _mm_unpacklo_epi8(r0, r1);
      const __m128i hi01 = _mm_unpackhi_epi8(r0, r1);
      const __m128i lo23 = _mm_unpacklo_epi8(r2, r3);
      const __m128i hi23 = _mm_unpackhi_epi8(r2, r3);
      __m128i* dst = reinterpret_cast<__m128i*>(out + 4 * j);
      _mm_storeu_si128(dst, _mm_unpacklo_epi16(lo01, lo23));
      _mm_storeu_si128(dst + 1, _mm_unpackhi_epi16(lo01, lo23));
      _mm_storeu_si128(dst + 2, _mm_unpacklo_epi16(hi01, hi23));
      _mm_storeu_si128(dst + 3, _mm_unpackhi_epi16(hi01, hi23));
    }
  }
#endif
  for (int t = 0; t < 4; ++t) {
    const T* row = rows[t];
    for (int jj = j; jj < cols; ++jj) {
      out[4 * jj + t] = row != nullptr ? static_cast<uint8_t>(row[jj]) : 0;
    }
  }
  std::memset(out + 4 * cols, 0, (nr - cols) * 4);
}

template void PackLeftPanel<uint8_t>(const PathInfo&, const uint8_t*, int64_t,
                                     int, int64_t, uint8_t*);
template void PackLeftPanel<int8_t>(const PathInfo&, const int8_t*, int64_t,
                                    int, int64_t, uint8_t*);
template void PackRightGroup<uint8_t>(const PathInfo&, const uint8_t* const*,
                                      int, uint8_t*);
template void PackRightGroup<int8_t>(const PathInfo&, const int8_t* const*, int,
                                     uint8_t*);

absl::Status MakeChannelData(const QRequantization& rq, int64_t channels,
                             const std::vector<int32_t>& sums,
                             int32_t a_zero_point, ChannelData* out) {
  if (rq.output == QOutputType::kInt32 && rq.relu) {
    return absl::InvalidArgumentError(
        "QRequantization: relu needs a uint8 or float output");
  }
  if (rq.output == QOutputType::kUint8 &&
      (rq.zero_point < 0 || rq.zero_point > 255)) {
    return absl::InvalidArgumentError(
        absl::StrCat("QRequantization: output zero point ", rq.zero_point,
                     " is outside 0..255"));
  }
  CHECK_EQ(static_cast<int64_t>(sums.size()), channels);
  out->offset.resize(channels);
  out->scale.clear();
  if (rq.output != QOutputType::kInt32) {
    CHECK(rq.scale != nullptr) << "QRequantization: no scale";
    out->scale.resize(channels);
    for (int64_t ch = 0; ch < channels; ++ch) {
      const float s = rq.scale[ch];
      if (!(s > 0.0f) || !std::isfinite(s)) {
        return absl::InvalidArgumentError(
            absl::StrCat("QRequantization: scale[", ch, "] = ", s,
                         "; scales must be positive and finite"));
      }
      out->scale[ch] = s;
    }
  }
  for (int64_t ch = 0; ch < channels; ++ch) {
    const int64_t bias = rq.bias != nullptr ? rq.bias[ch] : 0;
    if (bias > kQGemmMaxBias || bias < -kQGemmMaxBias) {
      return absl::InvalidArgumentError(absl::StrCat(
          "QRequantization: bias[", ch, "] = ", bias, " is beyond +-2^30"));
    }
    // |sums| <= 128 k and k <= 2^15: the correction is within 2^30 too.
    out->offset[ch] = static_cast<int32_t>(
        bias - static_cast<int64_t>(a_zero_point) * sums[ch]);
  }
  return absl::OkStatus();
}

QTileEpilogue MakeEpilogue(const QRequantization& rq, const ChannelData& data,
                           bool channel_is_row, void* c, int64_t ldc) {
  QTileEpilogue e;
  switch (rq.output) {
    case QOutputType::kUint8:
      e.store = QStore::kUint8;
      break;
    case QOutputType::kInt32:
      e.store = QStore::kInt32;
      break;
    case QOutputType::kFloat:
      e.store = QStore::kFloat;
      break;
  }
  e.channel_is_row = channel_is_row;
  e.relu = rq.relu;
  e.offset = data.offset.data();
  e.scale = data.scale.empty() ? nullptr : data.scale.data();
  e.zero_point = rq.zero_point;
  e.c = c;
  e.ldc = ldc;
  return e;
}

int64_t OutputBytes(QOutputType type) {
  return type == QOutputType::kUint8 ? 1 : 4;
}

void RunBlock(const Block& b) {
  const QKernel& kernel = b.path->kernel;
  const QKernelFn run = b.left_u8 ? kernel.left_u8 : kernel.right_u8;
  const int64_t mr = kernel.mr, nr = kernel.nr;
  const int64_t l_bytes = b.path->LeftPanelBytes(b.k);
  const int64_t r_bytes = b.path->RightPanelBytes(b.k);
  const int64_t steps = b.path->KSteps(b.k);
  // R panels swept by each L panel while they stay in L2 (about 192 KiB).
  const int64_t group = std::max<int64_t>(1, (192 << 10) / r_bytes);
  const int64_t n_panels = CeilDiv(b.n, nr), m_panels = CeilDiv(b.m, mr);
  for (int64_t g0 = 0; g0 < n_panels; g0 += group) {
    const int64_t g1 = std::min(n_panels, g0 + group);
    for (int64_t ip = 0; ip < m_panels; ++ip) {
      const int64_t i0 = ip * mr;
      for (int64_t jp = g0; jp < g1; ++jp) {
        const int64_t j0 = jp * nr;
        QTileEpilogue e = b.e;
        e.c = static_cast<char*>(b.e.c) + (i0 * b.e.ldc + j0) * b.c_bytes;
        const int64_t ch = b.e.channel_is_row ? i0 : j0;
        e.offset += ch;
        if (e.scale != nullptr) e.scale += ch;
        run(steps, b.l + ip * l_bytes, b.r + jp * r_bytes, e,
            static_cast<int>(std::min(mr, b.m - i0)),
            static_cast<int>(std::min(nr, b.n - j0)));
      }
    }
  }
}

}  // namespace qgemm_internal

using qgemm_internal::CeilDiv;
using qgemm_internal::PathInfo;
using qgemm_internal::PathOf;

absl::string_view QGemmPathName(QGemmPath path) {
  switch (path) {
    case QGemmPath::kGeneric:
      return "generic";
    case QGemmPath::kAvx2:
      return "avx2";
    case QGemmPath::kAvx2U7:
      return "avx2_u7";
    case QGemmPath::kAvxVnni:
      return "avx_vnni";
    case QGemmPath::kAvx512Vnni:
      return "avx512_vnni";
    case QGemmPath::kAmx:
      return "amx";
  }
  return "?";
}

absl::StatusOr<QGemmPath> ParseQGemmPath(absl::string_view name) {
  for (QGemmPath path : kAllQGemmPaths) {
    if (QGemmPathName(path) == name) return path;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("\"", name,
                   "\" is not an int8 path (generic, avx2, avx2_u7, avx_vnni, "
                   "avx512_vnni, amx)"));
}

namespace {

// C [m, n] = L [m, k] * R [k, n] in int32 on `info`'s kernel through the
// packers and RunBlock of every product, on this thread.
template <typename TL, typename TR>
std::vector<int32_t> BlockProduct(const PathInfo& info, bool left_u8, int64_t m,
                                  int64_t n, int64_t k, const TL* l,
                                  const TR* r) {
  const int64_t mr = info.kernel.mr, nr = info.kernel.nr;
  const int64_t l_bytes = info.LeftPanelBytes(k),
                r_bytes = info.RightPanelBytes(k);
  std::shared_ptr<uint8_t> lp =
      qgemm_internal::AlignedBuffer(CeilDiv(m, mr) * l_bytes);
  std::shared_ptr<uint8_t> rp =
      qgemm_internal::AlignedBuffer(CeilDiv(n, nr) * r_bytes);
  for (int64_t i0 = 0; i0 < m; i0 += mr) {
    qgemm_internal::PackLeftPanel<TL>(info, l + i0 * k, k,
                                      static_cast<int>(std::min(mr, m - i0)), k,
                                      lp.get() + i0 / mr * l_bytes);
  }
  const int unit = qgemm_internal::RightGroupRows(info);
  for (int64_t j0 = 0; j0 < n; j0 += nr) {
    for (int64_t g = 0; g < info.KPad(k) / unit; ++g) {
      const TR* rows[4] = {};
      for (int t = 0; t < unit; ++t) {
        if (g * unit + t < k) rows[t] = r + (g * unit + t) * n + j0;
      }
      qgemm_internal::PackRightGroup<TR>(
          info, rows, static_cast<int>(std::min(nr, n - j0)),
          rp.get() + j0 / nr * r_bytes +
              g * qgemm_internal::RightGroupBytes(info));
    }
  }
  std::vector<int32_t> c(m * n), zeros(n, 0);
  qgemm_internal::Block block;
  block.path = &info;
  block.left_u8 = left_u8;
  block.k = k;
  block.l = lp.get();
  block.m = m;
  block.r = rp.get();
  block.n = n;
  block.e.store = qgemm_internal::QStore::kInt32;
  block.e.offset = zeros.data();
  block.e.c = c.data();
  block.e.ldc = n;
  block.c_bytes = 4;
  qgemm_internal::WithKernel(info, [&] { qgemm_internal::RunBlock(block); });
  return c;
}

// The AMX kernel proves itself before its first use in a process (it has
// never run on AMX hardware): products of 37 x 45 x 70 (a whole 32 x 32 tile
// and edges in m, n and k) with uint8 on either side, against the generic
// path's. FailedPrecondition naming the difference where they differ. A
// fault of the tile instructions is not caught (unlike the bf16 kernel's
// check, tensor/gemm.h's AmxSelfCheck): the process dies.
absl::Status AmxSelfCheck() {
  constexpr int64_t m = 37, n = 45, k = 70;
  std::vector<uint8_t> u(std::max(m, k) * std::max(n, k));
  std::vector<int8_t> s(u.size());
  uint32_t x = 12345;
  for (size_t i = 0; i < u.size(); ++i) {
    x = x * 1664525u + 1013904223u;
    u[i] = static_cast<uint8_t>(x >> 24);
    s[i] = static_cast<int8_t>(x >> 16);
  }
  const PathInfo& amx = PathOf(QGemmPath::kAmx);
  const PathInfo& generic = PathOf(QGemmPath::kGeneric);
  for (bool left_u8 : {true, false}) {
    const std::vector<int32_t> got =
        left_u8 ? BlockProduct(amx, true, m, n, k, u.data(), s.data())
                : BlockProduct(amx, false, m, n, k, s.data(), u.data());
    const std::vector<int32_t> want =
        left_u8 ? BlockProduct(generic, true, m, n, k, u.data(), s.data())
                : BlockProduct(generic, false, m, n, k, s.data(), u.data());
    for (size_t i = 0; i < got.size(); ++i) {
      if (got[i] != want[i]) {
        return absl::FailedPreconditionError(
            absl::StrCat("the int8 AMX kernel failed its self-check (",
                         left_u8 ? "TDPBUSD" : "TDPBSUD", ": element ", i,
                         " is ", got[i], ", not ", want[i], ")"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status QGemmPathSupported(QGemmPath path) {
  const CpuFeatures& f = DetectedCpu();
  const bool avx2 = f.avx2 && f.fma;
  const bool avx512 =
      avx2 && f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl;
  const auto lacks = [&](const char* what) {
    return absl::FailedPreconditionError(
        absl::StrCat("the int8 ", QGemmPathName(path), " path needs ", what,
                     ", which this CPU (", f.brand, ") lacks"));
  };
  switch (path) {
    case QGemmPath::kGeneric:
      return absl::OkStatus();
    case QGemmPath::kAvx2:
    case QGemmPath::kAvx2U7:
      return avx2 ? absl::OkStatus() : lacks("AVX2 and FMA");
    case QGemmPath::kAvxVnni:
      return avx2 && f.avx_vnni ? absl::OkStatus() : lacks("AVX-VNNI");
    case QGemmPath::kAvx512Vnni:
      return avx512 && f.avx512_vnni ? absl::OkStatus()
                                     : lacks("AVX-512 F/BW/DQ/VL and VNNI");
    case QGemmPath::kAmx: {
      if (qgemm_internal::AmxEmulatedQKernel != nullptr) {
        if (!avx512 || !f.avx512_vnni) {
          return lacks("AVX512-VNNI (for the emulated AMX kernel)");
        }
      } else if (!avx512 || !f.amx_int8) {
        return lacks("AMX-INT8 with the tile data granted by Linux");
      }
      static const absl::Status* const verdict =
          new absl::Status(AmxSelfCheck());
      return *verdict;
    }
  }
  return absl::InvalidArgumentError("unknown QGemmPath");
}

namespace {

// DIVE_QGEMM_PATH's path, read once; none where unset or bad (reported).
const QGemmPath* PathFromEnvironment() {
  static const QGemmPath* const path = []() -> const QGemmPath* {
    const char* value = std::getenv("DIVE_QGEMM_PATH");
    if (value == nullptr || *value == '\0') return nullptr;
    absl::StatusOr<QGemmPath> p = ParseQGemmPath(value);
    absl::Status s = p.ok() ? QGemmPathSupported(*p) : p.status();
    if (!s.ok()) {
      LOG(ERROR) << "DIVE_QGEMM_PATH=" << value << " ignored: " << s.message();
      return nullptr;
    }
    return new QGemmPath(*p);
  }();
  return path;
}

}  // namespace

QGemmPath DefaultQGemmPath(bool activations_7bit) {
  QGemmPath path = QGemmPath::kGeneric;
  const Isa isa = ActiveIsa();
  if (const QGemmPath* forced = PathFromEnvironment(); forced != nullptr) {
    path = *forced;
  } else if (isa >= Isa::kAvx512 &&
             QGemmPathSupported(QGemmPath::kAvx512Vnni).ok()) {
    path = QGemmPath::kAvx512Vnni;
  } else if (isa >= Isa::kAvx2) {
    path = QGemmPathSupported(QGemmPath::kAvxVnni).ok() ? QGemmPath::kAvxVnni
                                                        : QGemmPath::kAvx2;
  }
  if (activations_7bit && path == QGemmPath::kAvx2) path = QGemmPath::kAvx2U7;
  return path;
}

absl::StatusOr<QPackedWeights> PackQGemmWeights(QGemmPath path, int64_t k,
                                                int64_t n, const int8_t* b,
                                                int64_t ldb, bool transposed) {
  if (k < 1 || n < 1 || k > kQGemmMaxK) {
    return absl::InvalidArgumentError(
        absl::StrCat("PackQGemmWeights: k = ", k, ", n = ", n,
                     "; need 1 <= k <= ", kQGemmMaxK, " and n >= 1"));
  }
  if (ldb < (transposed ? k : n)) {
    return absl::InvalidArgumentError(
        absl::StrCat("PackQGemmWeights: ldb = ", ldb, " is below the row's ",
                     transposed ? k : n, " elements"));
  }
  if (absl::Status s = QGemmPathSupported(path); !s.ok()) return s;
  CHECK(b != nullptr) << "PackQGemmWeights: null weights";
  // B as [k, n] rows.
  std::vector<int8_t> rows;
  const int8_t* src = b;
  int64_t ld = ldb;
  if (transposed) {
    rows.resize(k * n);
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t p = 0; p < k; ++p) rows[p * n + j] = b[j * ldb + p];
    }
    src = rows.data();
    ld = n;
  }
  std::vector<int32_t> sums(n, 0);
  for (int64_t p = 0; p < k; ++p) {
    for (int64_t j = 0; j < n; ++j) sums[j] += src[p * ld + j];
  }
  const PathInfo& info = PathOf(path);
  const int64_t nr = info.kernel.nr, panel = info.RightPanelBytes(k);
  const int unit = qgemm_internal::RightGroupRows(info);
  const int64_t groups = info.KPad(k) / unit;
  std::shared_ptr<uint8_t> data =
      qgemm_internal::AlignedBuffer(CeilDiv(n, nr) * panel);
  for (int64_t j0 = 0; j0 < n; j0 += nr) {
    const int cols = static_cast<int>(std::min(nr, n - j0));
    for (int64_t g = 0; g < groups; ++g) {
      const int8_t* group_rows[4] = {};
      for (int t = 0; t < unit; ++t) {
        const int64_t p = g * unit + t;
        group_rows[t] = p < k ? src + p * ld + j0 : nullptr;
      }
      qgemm_internal::PackRightGroup<int8_t>(
          info, group_rows, cols,
          data.get() + j0 / nr * panel +
              g * qgemm_internal::RightGroupBytes(info));
    }
  }
  return QPackedWeightsAccess::Make(path, QPackedWeights::Role::kGemm, n, k,
                                    std::move(data), std::move(sums));
}

namespace {

// Below this many multiply-adds a second thread costs more than it saves.
constexpr int64_t kMinParallelMacs = 1 << 20;

// [first, second) of `panels` panels for thread t of `threads`.
std::pair<int64_t, int64_t> Slab(int64_t panels, int t, int threads) {
  return {panels * t / threads, panels * (t + 1) / threads};
}

}  // namespace

absl::Status QGemm(int64_t m, const uint8_t* a, int64_t lda,
                   int32_t a_zero_point, const QPackedWeights& b,
                   const QRequantization& rq, void* c, int64_t ldc) {
  if (b.role() != QPackedWeights::Role::kGemm) {
    return absl::InvalidArgumentError(
        "QGemm: the weights were not packed by PackQGemmWeights");
  }
  const int64_t k = b.k(), n = b.channels();
  if (m < 1 || lda < k || ldc < n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "QGemm: m = ", m, ", lda = ", lda, ", ldc = ", ldc, " for k = ", k,
        ", n = ", n, "; need m >= 1, lda >= k, ldc >= n"));
  }
  if (a_zero_point < 0 || a_zero_point > 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        "QGemm: activation zero point ", a_zero_point, " is outside 0..255"));
  }
  if (absl::Status s = QGemmPathSupported(b.path()); !s.ok()) return s;
  qgemm_internal::ChannelData channels;
  if (absl::Status s = qgemm_internal::MakeChannelData(rq, n, b.sums(),
                                                       a_zero_point, &channels);
      !s.ok()) {
    return s;
  }
  CHECK(a != nullptr && c != nullptr) << "QGemm: null operand";
  // avx2_u7: its VPMADDUBSW kernels where A's bytes allow (the zero point
  // only enters the per-channel correction).
  const PathInfo& info = qgemm_internal::PathFor(
      b.path(), b.path() == QGemmPath::kAvx2U7 &&
                    qgemm_internal::AllWithin127(a, m, k, lda));
  const int64_t mr = info.kernel.mr, nr = info.kernel.nr;
  const int64_t m_panels = CeilDiv(m, mr), n_panels = CeilDiv(n, nr);
  const int64_t l_bytes = info.LeftPanelBytes(k);
  int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (m * n * k < kMinParallelMacs) threads = 1;
  // A packed whole, by the threads that will read it.
  uint8_t* packed_a = qgemm_internal::ThreadScratch(
      qgemm_internal::kLeftScratch, m_panels * l_bytes);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t ip = 0; ip < m_panels; ++ip) {
    qgemm_internal::PackLeftPanel<uint8_t>(
        info, a + ip * mr * lda, lda,
        static_cast<int>(std::min(mr, m - ip * mr)), k,
        packed_a + ip * l_bytes);
  }
  const qgemm_internal::QTileEpilogue e = qgemm_internal::MakeEpilogue(
      rq, channels, /*channel_is_row=*/false, c, ldc);
  const int64_t c_bytes = qgemm_internal::OutputBytes(rq.output);
  // Columns (each thread a share of B) when there are enough, else rows.
  const bool split_n = n_panels >= threads;
  threads = static_cast<int>(
      std::min<int64_t>(threads, split_n ? n_panels : m_panels));
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const auto [lo, hi] = Slab(split_n ? n_panels : m_panels, t, threads);
    if (hi > lo) {
      qgemm_internal::Block block;
      block.path = &info;
      block.left_u8 = true;
      block.k = k;
      block.e = e;
      block.c_bytes = c_bytes;
      if (split_n) {
        block.l = packed_a;
        block.m = m;
        block.r = b.data() + lo * info.RightPanelBytes(k);
        block.n = std::min(n, hi * nr) - lo * nr;
        block.e.c = static_cast<char*>(c) + lo * nr * c_bytes;
        block.e.offset += lo * nr;
        if (block.e.scale != nullptr) block.e.scale += lo * nr;
      } else {
        block.l = packed_a + lo * l_bytes;
        block.m = std::min(m, hi * mr) - lo * mr;
        block.r = b.data();
        block.n = n;
        block.e.c = static_cast<char*>(c) + lo * mr * ldc * c_bytes;
      }
      qgemm_internal::WithKernel(info,
                                 [&] { qgemm_internal::RunBlock(block); });
    }
  }
  return absl::OkStatus();
}

}  // namespace dive
