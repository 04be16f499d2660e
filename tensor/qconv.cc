#include "tensor/qconv.h"

#include <omp.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "tensor/qconv_onednn.h"
#include "tensor/qgemm_driver.h"

namespace dive {
namespace {

using qgemm_internal::CeilDiv;
using qgemm_internal::PathInfo;

// The convolution on x padded once (xp: [n, c, hp, wp], the zero point
// around the image), so that im2col reads no bounds: column q = (image, i,
// j) of row r = (ci, a, b) is xp[image, ci, i * sh + a, j * sw + b].
struct Geometry {
  int64_t c, hp, wp, kh, kw, sh, sw, oh, ow;

  int64_t Ohw() const { return oh * ow; }
  int64_t Plane() const { return hp * wp; }
};

// Row r of the im2col of all images side by side (n * oh * ow columns),
// columns [q0, q0 + cols), to dst, which may be written up to 15 bytes past
// its end. Runs of up to ow columns (a whole image's where its rows are
// contiguous in xp: stride 1 and wp == ow), walked without divisions: with
// stride 1, copied 16 bytes at a time (the last copy reading and writing
// past the run) where xp has the bytes; else in loops (which gcc is told
// not to turn into memcpy calls: they cost more than copies of a few
// bytes).
void Im2ColRow(const Geometry& g, const uint8_t* xp, const uint8_t* xp_end,
               int64_t r, int64_t q0, int64_t cols, uint8_t* __restrict dst) {
  const int64_t ci = r / (g.kh * g.kw), a = r / g.kw % g.kh, b = r % g.kw;
  const int64_t ohw = g.Ohw();
  const bool contiguous = g.sw == 1 && g.wp == g.ow;
  const int64_t image = q0 / ohw, pixel = q0 % ohw;
  int64_t oi = pixel / g.ow, oj = pixel % g.ow;
  const uint8_t* plane = xp + (image * g.c + ci) * g.Plane() + a * g.wp + b;
  for (int64_t left = cols; left > 0;) {
    const int64_t seg =
        std::min(contiguous ? ohw - (oi * g.ow + oj) : g.ow - oj, left);
    const uint8_t* __restrict src = plane + oi * g.sh * g.wp + oj * g.sw;
    if (g.sw == 1) {
#if defined(__SSE2__)
      if (src + (seg + 15) / 16 * 16 <= xp_end) {
        for (int64_t t = 0; t < seg; t += 16) {
          _mm_storeu_si128(
              reinterpret_cast<__m128i*>(dst + t),
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + t)));
        }
      } else {
        for (int64_t t = 0; t < seg; ++t) dst[t] = src[t];
      }
#else
      for (int64_t t = 0; t < seg; ++t) dst[t] = src[t];
#endif
    } else if (g.sw == 2) {  // ResNet's downsampling and its shortcuts
      int64_t t = 0;
#if defined(__SSE2__)
      // 16 columns from 32 bytes: the low byte of each 16-bit lane, packed
      // (a byte loop at stride 2 was 2-3% of an int8 ResNet-18).
      const __m128i low = _mm_set1_epi16(0x00FF);
      for (; t + 16 <= seg && src + 2 * t + 32 <= xp_end; t += 16) {
        const __m128i a = _mm_and_si128(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * t)),
            low);
        const __m128i b = _mm_and_si128(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * t + 16)),
            low);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + t),
                         _mm_packus_epi16(a, b));
      }
#endif
      for (; t < seg; ++t) dst[t] = src[2 * t];
    } else {
      for (int64_t t = 0; t < seg; ++t) dst[t] = src[t * g.sw];
    }
    dst += seg;
    left -= seg;
    oj += seg;
    if (contiguous || oj == g.ow) {  // the next row, or the next image
      oj = 0;
      if (contiguous || ++oi == g.oh) {
        oi = 0;
        plane += g.c * g.Plane();
      }
    }
  }
}

// The R panels of columns [q0, q0 + qn) of the im2col (k rows): each group
// of rows built whole for the block, then interleaved panel by panel.
void PackIm2Col(const PathInfo& info, const Geometry& g, const uint8_t* xp,
                const uint8_t* xp_end, int64_t k, int64_t q0, int64_t qn,
                uint8_t* out) {
  const int64_t nr = info.kernel.nr, panel = info.RightPanelBytes(k);
  const int unit = qgemm_internal::RightGroupRows(info);
  const int64_t groups = info.KPad(k) / unit;
  const int64_t group_bytes = qgemm_internal::RightGroupBytes(info);
  uint8_t* rows_buffer =
      qgemm_internal::ThreadScratch(qgemm_internal::kRowsScratch, 4 * qn + 16);
  for (int64_t gi = 0; gi < groups; ++gi) {
    const uint8_t* rows[4] = {};
    for (int t = 0; t < unit; ++t) {
      const int64_t r = gi * unit + t;
      if (r < k) {
        Im2ColRow(g, xp, xp_end, r, q0, qn, rows_buffer + t * qn);
        rows[t] = rows_buffer + t * qn;
      }
    }
    for (int64_t j0 = 0; j0 < qn; j0 += nr) {
      const uint8_t* panel_rows[4];
      for (int t = 0; t < 4; ++t) {
        panel_rows[t] = rows[t] != nullptr ? rows[t] + j0 : nullptr;
      }
      qgemm_internal::PackRightGroup<uint8_t>(
          info, panel_rows, static_cast<int>(std::min(nr, qn - j0)),
          out + j0 / nr * panel + gi * group_bytes);
    }
  }
}

// x [n, c, h, w] with `pad` rows and columns of `zero_point` around each
// plane, into xp [n, c, h + 2 ph, w + 2 pw].
void PadImages(const uint8_t* x, int64_t planes, int64_t h, int64_t w,
               int64_t ph, int64_t pw, uint8_t zero_point, uint8_t* xp) {
  const int64_t hp = h + 2 * ph, wp = w + 2 * pw;
#pragma omp parallel for schedule(static) if (planes * hp * wp > (1 << 16))
  for (int64_t pl = 0; pl < planes; ++pl) {
    uint8_t* __restrict out = xp + pl * hp * wp;
    const uint8_t* __restrict in = x + pl * h * w;
    for (int64_t i = 0; i < ph * wp; ++i) out[i] = zero_point;
    for (int64_t i = 0; i < h; ++i) {
      uint8_t* __restrict row = out + (ph + i) * wp;
      for (int64_t j = 0; j < pw; ++j) row[j] = zero_point;
      for (int64_t j = 0; j < w; ++j) row[pw + j] = in[i * w + j];
      for (int64_t j = pw + w; j < wp; ++j) row[j] = zero_point;
    }
    for (int64_t i = (ph + h) * wp; i < hp * wp; ++i) out[i] = zero_point;
  }
}

// ---- Stride 1 without im2col
// -------------------------------------------------
//
// The input is reordered once into xr [n, ceil(c / 4), hp, wp, 4]: padded
// with the zero point, channels interleaved by 4, so that the 4 bytes of a
// VPDPBUSD lane are 4 channels at one pixel. The output is computed over
// "virtual" columns v = i * wp + j, j < wp (the padded width), whose input
// for kernel offset (a, b) is xr at pixel v + a * wp + b: a run of 64
// columns of one quad row of R is 256 contiguous bytes of xr, which the
// kernel loads in place (QIndirectKernelFn) at the offset of its (group, a,
// b). The kw - 1 virtual columns past ow in each row are computed and
// dropped; the tile goes through a buffer to the planes of y (unless kw = 1
// and pw = 0: then it is stored in place). Each image's virtual columns
// fill whole panels of the kernel, so that QConv2d takes this way only
// where enough of them are outputs (ImplicitPays; else the im2col). 1 core
// of the Zen 5, uint8 out, against the im2col: ResNet's 3 x 3 x 64 on
// 24 x 24 planes 433 GOPS against 211, VGG's 3 x 3 x 16 on 48 x 48 281
// against 151 (bench/int8_benchmark, under load).

// Whether ConvImplicit pays: it wastes less than 30% of its columns, or
// none for a 1x1 kernel, whose im2col is a copy of the input as cheap as
// the reordering (bench/int8_benchmark, googlenet96_1x1: 12 x 12 planes in
// 3 panels of 64, 176 GOPS this way against 294 by the im2col).
bool ImplicitPays(int64_t nr, int64_t kh, int64_t kw, int64_t oh, int64_t ow,
                  int64_t wp) {
  const int64_t columns = qgemm_internal::RoundUp(oh * wp, nr);
  return kh * kw > 1 ? 10 * oh * ow >= 7 * columns : oh * ow == columns;
}

void ConvImplicit(const PathInfo& info, int64_t n, int64_t c, int64_t h,
                  int64_t w, const uint8_t* x, uint8_t zero_point,
                  const QPackedWeights& weights, int64_t ph, int64_t pw,
                  int64_t oh, int64_t ow,
                  const qgemm_internal::QTileEpilogue& e, int64_t c_bytes,
                  void* y) {
  const int64_t kh = weights.conv_kh(), kw = weights.conv_kw();
  const int64_t oc = weights.channels(), groups = CeilDiv(c, 4);
  const int64_t hp = h + 2 * ph, wp = w + 2 * pw;
  const int64_t plane = hp * wp * 4, image_bytes = groups * plane;
  // Tiles read up to nr - 1 + kw columns past an image's last row.
  const int64_t slack = (info.kernel.nr + kw + 16) * 4;
  std::shared_ptr<uint8_t> xr =
      qgemm_internal::AlignedBuffer(n * image_bytes + slack);
  std::memset(xr.get() + n * image_bytes, zero_point, slack);
#pragma omp parallel for schedule(static) if (n * image_bytes > (1 << 16))
  for (int64_t ig = 0; ig < n * groups; ++ig) {
    const int64_t image = ig / groups, g = ig % groups;
    uint8_t* __restrict out = xr.get() + ig * plane;
    std::memset(out, zero_point, plane);
    for (int t = 0; t < 4 && 4 * g + t < c; ++t) {
      const uint8_t* __restrict src = x + (image * c + 4 * g + t) * h * w;
      for (int64_t i = 0; i < h; ++i) {
        uint8_t* __restrict row = out + ((i + ph) * wp + pw) * 4 + t;
        for (int64_t j = 0; j < w; ++j) row[4 * j] = src[i * w + j];
      }
    }
  }
  const int64_t steps = groups * kh * kw;
  std::vector<int64_t> offsets(steps);
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t a = 0; a < kh; ++a) {
      for (int64_t b = 0; b < kw; ++b) {
        offsets[(g * kh + a) * kw + b] = g * plane + (a * wp + b) * 4;
      }
    }
  }
  const int64_t mr = info.kernel.mr, nr = info.kernel.nr;
  const int64_t virtual_columns = oh * wp, ohw = oh * ow;
  const int64_t l_bytes = info.LeftPanelBytes(steps * 4);
  const int64_t m_panels = CeilDiv(oc, mr);
  // Tasks of up to 8 panels of one image's virtual columns, at least two
  // per thread where there are enough panels.
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const int64_t image_panels = CeilDiv(virtual_columns, nr);
  int64_t panels = std::min<int64_t>(8, image_panels);
  panels = std::min(
      panels, std::max<int64_t>(1, CeilDiv(image_panels * n, 2 * threads)));
  panels = CeilDiv(image_panels, CeilDiv(image_panels, panels));
  const int64_t chunk = panels * nr,
                image_chunks = CeilDiv(image_panels, panels);
  const int64_t tasks = n * image_chunks;
  // Without padding along the rows of a 1-wide kernel, virtual columns are
  // y's own.
  const bool direct = wp == ow;
  const qgemm_internal::QIndirectKernelFn run = info.kernel.right_u8_indirect;
  const uint8_t* const l = weights.implicit_data();
#pragma omp parallel num_threads( \
    static_cast <int>(std::min <int64_t>(threads, tasks)))
  {
    char* buffer = reinterpret_cast<char*>(qgemm_internal::ThreadScratch(
        qgemm_internal::kLeftScratch, oc * chunk * c_bytes));
    qgemm_internal::WithKernel(info, [&] {
#pragma omp for schedule(static)
      for (int64_t task = 0; task < tasks; ++task) {
        const int64_t image = task / image_chunks;
        const int64_t v0 = task % image_chunks * chunk;
        const int64_t vn = std::min(chunk, virtual_columns - v0);
        const uint8_t* r = xr.get() + image * image_bytes + v0 * 4;
        for (int64_t ip = 0; ip < m_panels; ++ip) {
          const int64_t i0 = ip * mr;
          for (int64_t j0 = 0; j0 < vn; j0 += nr) {
            qgemm_internal::QTileEpilogue te = e;
            if (direct) {  // virtual columns are y's: in place
              te.c = static_cast<char*>(y) +
                     ((image * oc + i0) * ohw + v0 + j0) * c_bytes;
            } else {
              te.c = buffer + (i0 * chunk + j0) * c_bytes;
              te.ldc = chunk;
            }
            te.offset += i0;
            if (te.scale != nullptr) te.scale += i0;
            run(steps, l + ip * l_bytes, r + j0 * 4, offsets.data(), te,
                static_cast<int>(std::min(mr, oc - i0)),
                static_cast<int>(std::min(nr, vn - j0)));
          }
        }
        if (direct) continue;
        // The virtual columns j < ow of each row to y's planes (loops: a
        // row is a few bytes).
        char* y_image = static_cast<char*>(y) + image * oc * ohw * c_bytes;
        int64_t oi = v0 / wp, oj = v0 % wp;
        for (int64_t v = 0; v < vn;) {
          const int64_t seg = std::min(wp - oj, vn - v);
          const int64_t keep =
              std::max<int64_t>(0, std::min(seg, ow - oj)) * c_bytes;
          for (int64_t o = 0; keep > 0 && o < oc; ++o) {
            char* __restrict dst = y_image + (o * ohw + oi * ow + oj) * c_bytes;
            const char* __restrict src = buffer + (o * chunk + v) * c_bytes;
            for (int64_t t = 0; t < keep; ++t) dst[t] = src[t];
          }
          v += seg;
          oj = 0;
          ++oi;
        }
      }
    });
  }
}

QConvLibrary LibraryFromEnvironment() {
  const char* name = "DIVE_QCONV_LIBRARY";
  const char* value = std::getenv(name);
  if (value == nullptr) {
    name = "DIVE_CONV_LIBRARY";
    value = std::getenv(name);
  }
  if (value == nullptr || value == std::string("auto")) {
    return QConvLibrary::kAuto;
  }
  if (value == std::string("dive")) return QConvLibrary::kDive;
  if (value == std::string("onednn")) return QConvLibrary::kOneDnn;
  LOG(FATAL) << name << "=" << value << " is not one of auto, dive, onednn";
  return QConvLibrary::kAuto;
}

std::atomic<QConvLibrary>& Library() {
  static std::atomic<QConvLibrary> library(LibraryFromEnvironment());
  return library;
}

}  // namespace

QConvLibrary GetQConvLibrary() { return Library().load(); }

void SetQConvLibrary(QConvLibrary library) { Library().store(library); }

bool QConv2dUsesOneDnn(const QPackedWeights& weights) {
  return weights.role() == QPackedWeights::Role::kConv2d &&
         qconv_internal::OneDnnQConvTakes(weights);
}

absl::StatusOr<QPackedWeights> PackQConv2dWeights(QGemmPath path, int64_t oc,
                                                  int64_t c, int64_t kh,
                                                  int64_t kw, const int8_t* w) {
  if (oc < 1 || c < 1 || kh < 1 || kw < 1 || c * kh * kw > kQGemmMaxK) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PackQConv2dWeights: weight [", oc, ", ", c, ", ", kh, ", ", kw,
        "]; need every size >= 1 and c * kh * kw <= ", kQGemmMaxK));
  }
  if (absl::Status s = QGemmPathSupported(path); !s.ok()) return s;
  CHECK(w != nullptr) << "PackQConv2dWeights: null weights";
  const int64_t k = c * kh * kw;
  const PathInfo& info = qgemm_internal::PathOf(path);
  const int64_t mr = info.kernel.mr, panel = info.LeftPanelBytes(k);
  std::shared_ptr<uint8_t> data =
      qgemm_internal::AlignedBuffer(CeilDiv(oc, mr) * panel);
  for (int64_t i0 = 0; i0 < oc; i0 += mr) {
    qgemm_internal::PackLeftPanel<int8_t>(
        info, w + i0 * k, k, static_cast<int>(std::min(mr, oc - i0)), k,
        data.get() + i0 / mr * panel);
  }
  std::vector<int32_t> sums(oc, 0);
  for (int64_t o = 0; o < oc; ++o) {
    for (int64_t p = 0; p < k; ++p) sums[o] += w[o * k + p];
  }
  QPackedWeights packed =
      QPackedWeightsAccess::Make(path, QPackedWeights::Role::kConv2d, oc, k,
                                 std::move(data), std::move(sums));
  // The stride-1 layout (ConvImplicit below): quad q = (group g of 4 input
  // channels, kernel row a, column b) holds w[o, 4g .. 4g + 3, a, b], zero
  // past c.
  std::shared_ptr<uint8_t> implicit;
  if (info.kernel.right_u8_indirect != nullptr) {
    const int64_t k4 = CeilDiv(c, 4) * 4 * kh * kw;
    const int64_t panel4 = info.LeftPanelBytes(k4);
    implicit = qgemm_internal::AlignedBuffer(CeilDiv(oc, mr) * panel4);
    std::memset(implicit.get(), 0, CeilDiv(oc, mr) * panel4);
    for (int64_t o = 0; o < oc; ++o) {
      uint8_t* out = implicit.get() + o / mr * panel4 + o % mr * 4;
      for (int64_t ci = 0; ci < c; ++ci) {
        for (int64_t a = 0; a < kh; ++a) {
          for (int64_t b = 0; b < kw; ++b) {
            const int64_t q = (ci / 4 * kh + a) * kw + b;
            out[q * mr * 4 + ci % 4] =
                static_cast<uint8_t>(w[((o * c + ci) * kh + a) * kw + b]);
          }
        }
      }
    }
  }
  QPackedWeightsAccess::SetConv(&packed, c, kh, kw, std::move(implicit));
  if (path == QGemmPath::kAvx512Vnni) {
    QPackedWeightsAccess::SetOneDnn(
        &packed, qconv_internal::MakeOneDnnQConvCache(oc, c, kh, kw, w));
  }
  return packed;
}

absl::StatusOr<int64_t> QConv2dOutSize(int64_t in, int64_t kernel,
                                       int64_t stride, int64_t pad) {
  if (stride < 1 || pad < 0 || in + 2 * pad < kernel) {
    return absl::InvalidArgumentError(absl::StrCat(
        "QConv2d: input ", in, " with padding ", pad, " for kernel ", kernel,
        " and stride ", stride,
        "; need stride >= 1, padding >= 0 and the padded input at least the "
        "kernel"));
  }
  return (in + 2 * pad - kernel) / stride + 1;
}

absl::Status QConv2d(int64_t n, int64_t h, int64_t w, const uint8_t* x,
                     int32_t x_zero_point, const QPackedWeights& weights,
                     const QConv2dParams& p, const QRequantization& rq,
                     void* y) {
  if (weights.role() != QPackedWeights::Role::kConv2d) {
    return absl::InvalidArgumentError(
        "QConv2d: the weights were not packed by PackQConv2dWeights");
  }
  if (n < 1 || h < 1 || w < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("QConv2d: input [", n, ", ", weights.conv_c(), ", ", h,
                     ", ", w, "]; need every size >= 1"));
  }
  if (x_zero_point < 0 || x_zero_point > 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        "QConv2d: activation zero point ", x_zero_point, " is outside 0..255"));
  }
  absl::StatusOr<int64_t> oh =
      QConv2dOutSize(h, weights.conv_kh(), p.stride_h, p.pad_h);
  if (!oh.ok()) return oh.status();
  absl::StatusOr<int64_t> ow =
      QConv2dOutSize(w, weights.conv_kw(), p.stride_w, p.pad_w);
  if (!ow.ok()) return ow.status();
  if (absl::Status s = QGemmPathSupported(weights.path()); !s.ok()) return s;
  const int64_t oc = weights.channels(), k = weights.k();
  qgemm_internal::ChannelData channels;
  if (absl::Status s = qgemm_internal::MakeChannelData(rq, oc, weights.sums(),
                                                       x_zero_point, &channels);
      !s.ok()) {
    return s;
  }
  CHECK(x != nullptr && y != nullptr) << "QConv2d: null operand";
  const int64_t c = weights.conv_c();
  const int64_t c_bytes = qgemm_internal::OutputBytes(rq.output);
  const qgemm_internal::QTileEpilogue e = qgemm_internal::MakeEpilogue(
      rq, channels, /*channel_is_row=*/true, y, (*oh) * (*ow));
  if (qconv_internal::OneDnnQConvTakes(weights) &&
      qconv_internal::OneDnnQConv2d(n, h, w, x, x_zero_point, weights, p, *oh,
                                    *ow, rq, channels, y)) {
    return absl::OkStatus();
  }
  // avx2_u7: its VPMADDUBSW kernels where every byte they read, the
  // padding's zero point too, is within 0..127.
  const PathInfo& info = qgemm_internal::PathFor(
      weights.path(),
      weights.path() == QGemmPath::kAvx2U7 && x_zero_point <= 127 &&
          qgemm_internal::AllWithin127(x, 1, n * weights.conv_c() * h * w, 0));
  if (p.stride_h == 1 && p.stride_w == 1 &&
      weights.implicit_data() != nullptr &&
      ImplicitPays(info.kernel.nr, weights.conv_kh(), weights.conv_kw(), *oh,
                   *ow, w + 2 * p.pad_w)) {
    ConvImplicit(info, n, c, h, w, x, static_cast<uint8_t>(x_zero_point),
                 weights, p.pad_h, p.pad_w, *oh, *ow, e, c_bytes, y);
    return absl::OkStatus();
  }
  const Geometry g{c,
                   h + 2 * p.pad_h,
                   w + 2 * p.pad_w,
                   weights.conv_kh(),
                   weights.conv_kw(),
                   p.stride_h,
                   p.stride_w,
                   *oh,
                   *ow};
  const uint8_t* xp = x;
  std::shared_ptr<uint8_t> padded;
  if (p.pad_h > 0 || p.pad_w > 0) {
    padded = qgemm_internal::AlignedBuffer(n * c * g.Plane());
    PadImages(x, n * c, h, w, p.pad_h, p.pad_w,
              static_cast<uint8_t>(x_zero_point), padded.get());
    xp = padded.get();
  }
  const uint8_t* const xp_end = xp + n * c * g.Plane();
  const int64_t nr = info.kernel.nr, ohw = g.Ohw(), columns = n * ohw;
  const int64_t r_bytes = info.RightPanelBytes(k);
  // The images side by side: tasks of whole panels of columns, each block's
  // im2col within about 256 KiB (L2), at least two tasks per thread where
  // there are enough panels. A block within one image is written to y in
  // place; one across images through a buffer, then to each image's planes.
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const int64_t all_panels = CeilDiv(columns, nr);
  int64_t panels = std::max<int64_t>(1, (256 << 10) / r_bytes);
  panels =
      std::min(panels, std::max<int64_t>(1, CeilDiv(all_panels, 2 * threads)));
  // Blocks within one image where its columns fill whole panels but for at
  // most an eighth (no copy out of a buffer then), as evenly as they split.
  const bool per_image = (qgemm_internal::RoundUp(ohw, nr) - ohw) * 8 <= ohw;
  if (per_image) {
    const int64_t image_panels = CeilDiv(ohw, nr);
    panels = std::min(panels, image_panels);
    panels = CeilDiv(image_panels, CeilDiv(image_panels, panels));
  }
  const int64_t chunk = panels * nr;
  const int64_t image_chunks = CeilDiv(ohw, chunk);
  const int64_t tasks = per_image ? n * image_chunks : CeilDiv(columns, chunk);
  const int use_threads = static_cast<int>(std::min<int64_t>(threads, tasks));
#pragma omp parallel num_threads(use_threads)
  {
    uint8_t* packed = qgemm_internal::ThreadScratch(
        qgemm_internal::kRightScratch, panels * r_bytes);
    uint8_t* buffer =
        per_image ? nullptr
                  : qgemm_internal::ThreadScratch(qgemm_internal::kLeftScratch,
                                                  oc * chunk * c_bytes);
    qgemm_internal::WithKernel(info, [&] {
#pragma omp for schedule(static)
      for (int64_t task = 0; task < tasks; ++task) {
        int64_t q0, qn;
        if (per_image) {
          q0 = task / image_chunks * ohw + task % image_chunks * chunk;
          qn = std::min(chunk, ohw - task % image_chunks * chunk);
        } else {
          q0 = task * chunk;
          qn = std::min(chunk, columns - q0);
        }
        PackIm2Col(info, g, xp, xp_end, k, q0, qn, packed);
        qgemm_internal::Block block;
        block.path = &info;
        block.left_u8 = false;
        block.k = k;
        block.l = weights.data();
        block.m = oc;
        block.r = packed;
        block.n = qn;
        block.e = e;
        block.c_bytes = c_bytes;
        if (per_image) {
          const int64_t image = q0 / ohw;
          block.e.c =
              static_cast<char*>(y) + (image * oc * ohw + q0 % ohw) * c_bytes;
          qgemm_internal::RunBlock(block);
          continue;
        }
        block.e.c = buffer;
        block.e.ldc = qn;
        qgemm_internal::RunBlock(block);
        // Columns q0 .. q0 + qn of [oc, n * ohw] to each image's planes.
        for (int64_t q = q0; q < q0 + qn;) {
          const int64_t image = q / ohw, pixel = q % ohw;
          const int64_t seg = std::min(ohw - pixel, q0 + qn - q);
          for (int64_t o = 0; o < oc; ++o) {
            std::memcpy(static_cast<char*>(y) +
                            ((image * oc + o) * ohw + pixel) * c_bytes,
                        buffer + (o * qn + q - q0) * c_bytes, seg * c_bytes);
          }
          q += seg;
        }
      }
    });
  }
  return absl::OkStatus();
}

}  // namespace dive
