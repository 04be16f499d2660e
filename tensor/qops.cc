#include "tensor/qops.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "glog/logging.h"
#include "tensor/parallel.h"

namespace dive {
namespace {

using kernel_internal::ParallelFor;
using kernel_internal::ThreadsIf;

// Below this many elements one thread does the whole op.
constexpr int64_t kParallelElements = 1 << 16;

void CheckParams(const QUint8Params& q, const char* what) {
  CHECK(std::isfinite(q.scale) && q.scale > 0)
      << what << ": scale " << q.scale << " must be finite and > 0";
  CHECK(q.zero_point >= 0 && q.zero_point <= 255)
      << what << ": zero point " << q.zero_point << " outside 0..255";
}

// The 256 requantized values of QRequantizeU8.
std::array<uint8_t, 256> RequantizeTable(QUint8Params from, QUint8Params to) {
  const double m =
      static_cast<double>(from.scale) / static_cast<double>(to.scale);
  std::array<uint8_t, 256> table;
  for (int v = 0; v < 256; ++v) {
    const double q =
        std::nearbyint(m * static_cast<double>(v - from.zero_point)) +
        to.zero_point;
    table[v] = static_cast<uint8_t>(std::clamp(q, 0.0, 255.0));
  }
  return table;
}

void ApplyTable(int64_t count, const uint8_t* x,
                const std::array<uint8_t, 256>& table, uint8_t* y) {
  for (int64_t i = 0; i < count; ++i) y[i] = table[x[i]];
}

}  // namespace

void QRequantizeU8(int64_t count, const uint8_t* x, QUint8Params x_params,
                   QUint8Params y_params, uint8_t* y) {
  CHECK_GE(count, 0);
  CHECK(count == 0 || (x != nullptr && y != nullptr));
  CheckParams(x_params, "QRequantizeU8 input");
  CheckParams(y_params, "QRequantizeU8 output");
  if (x_params == y_params) {
    if (x != y) std::memmove(y, x, count);
    return;
  }
  const std::array<uint8_t, 256> table = RequantizeTable(x_params, y_params);
  ParallelFor(count, ThreadsIf(count > kParallelElements),
              [&](int64_t begin, int64_t end, int) {
                ApplyTable(end - begin, x + begin, table, y + begin);
              });
}

namespace {

// y[i] = clamp(nearbyint(ma (a[i] - za) + mb (b[i] - zb)) + zy, lo, 255)
// for i < n: a plain loop, in a function of its own, that -O3 vectorizes
// (widening, products in double, rounding, narrowing; in a lambda GCC kept
// it scalar: 2.8 ns an element, 9% of an int8 ResNet-18). The rounding half
// to even is nearbyint's, as adding and subtracting 1.5 x 2^52 makes it,
// exact for |v| < 2^51; v is first clamped to +-512, which changes no
// result (q saturates at 0 or 255 beyond 256 either way).
void AddU8Run(int64_t n, const uint8_t* a, double ma, int32_t za,
              const uint8_t* b, double mb, int32_t zb, double zy, double lo,
              uint8_t* y) {
  constexpr double kRound = 6755399441055744.0;  // 1.5 x 2^52
  for (int64_t i = 0; i < n; ++i) {
    double v = ma * static_cast<double>(a[i] - za) +
               mb * static_cast<double>(b[i] - zb);
    v = std::min(std::max(v, -512.0), 512.0);
    const double q = (v + kRound) - kRound + zy;
    y[i] = static_cast<uint8_t>(std::min(std::max(q, lo), 255.0));
  }
}

}  // namespace

void QAddU8(int64_t count, const uint8_t* a, QUint8Params a_params,
            const uint8_t* b, QUint8Params b_params, QUint8Params y_params,
            bool relu, uint8_t* y) {
  CHECK_GE(count, 0);
  CHECK(count == 0 || (a != nullptr && b != nullptr && y != nullptr));
  CheckParams(a_params, "QAddU8 input a");
  CheckParams(b_params, "QAddU8 input b");
  CheckParams(y_params, "QAddU8 output");
  const double sy = y_params.scale;
  const double ma = a_params.scale / sy, mb = b_params.scale / sy;
  const int32_t za = a_params.zero_point, zb = b_params.zero_point;
  const double zy = y_params.zero_point;
  const double lo = relu ? zy : 0.0;
  ParallelFor(count, ThreadsIf(count > kParallelElements),
              [&](int64_t begin, int64_t end, int) {
                AddU8Run(end - begin, a + begin, ma, za, b + begin, mb, zb, zy,
                         lo, y + begin);
              });
}

void QConcatChannelsU8(int64_t n, int64_t plane,
                       const std::vector<QConcatPart>& parts,
                       QUint8Params y_params, uint8_t* y) {
  CHECK_GE(n, 0);
  CHECK_GE(plane, 0);
  CHECK(y != nullptr);
  CheckParams(y_params, "QConcatChannelsU8 output");
  int64_t channels = 0;
  std::vector<int64_t> offsets;  // each part's first channel in y
  std::vector<std::array<uint8_t, 256>> tables(parts.size());
  for (size_t p = 0; p < parts.size(); ++p) {
    const QConcatPart& part = parts[p];
    CHECK(part.x != nullptr) << "QConcatChannelsU8: part " << p << " is null";
    CHECK_GE(part.channels, 0) << "QConcatChannelsU8: part " << p;
    CheckParams(part.params, "QConcatChannelsU8 part");
    if (!(part.params == y_params)) {
      tables[p] = RequantizeTable(part.params, y_params);
    }
    offsets.push_back(channels);
    channels += part.channels;
  }
  const int64_t jobs = n * static_cast<int64_t>(parts.size());
  ParallelFor(jobs, ThreadsIf(n * channels * plane > kParallelElements),
              [&](int64_t begin, int64_t end, int) {
                for (int64_t job = begin; job < end; ++job) {
                  const int64_t image =
                      job / static_cast<int64_t>(parts.size());
                  const size_t p = job % parts.size();
                  const QConcatPart& part = parts[p];
                  const int64_t size = part.channels * plane;
                  const uint8_t* from = part.x + image * size;
                  uint8_t* to = y + (image * channels + offsets[p]) * plane;
                  if (part.params == y_params) {
                    std::memcpy(to, from, size);
                  } else {
                    ApplyTable(size, from, tables[p], to);
                  }
                }
              });
}

namespace {

// Per-thread buffers of QMaxPool2dU8 for planes of h x w.
struct MaxPoolScratch {
  MaxPoolScratch(int64_t h, int64_t w, int64_t pad_w)
      : down(h * w),
        across(h * w),
        row(w + 2 * pad_w, 0),
        row_across(w + 2 * pad_w) {}
  // The vertical maxima of the window's rows from each row whose window
  // fits, and their horizontal maxima from each byte: each one long loop
  // over the plane (rows of a few dozen bytes, one at a time, left the
  // vector loops idle).
  std::vector<uint8_t> down, across;
  // One row's vertical maxima between padding of 0 (a byte's floor: it
  // never wins over the window's pixels), and its horizontal maxima, for
  // the output rows whose window the padding clips.
  std::vector<uint8_t> row, row_across;
};

// One plane of QMaxPool2dU8.
void MaxPoolPlaneU8(int64_t h, int64_t w, int64_t oh, int64_t ow,
                    const Pool2dParams& p, const uint8_t* x, MaxPoolScratch& s,
                    uint8_t* y) {
  const int64_t kh = p.kernel_h, kw = p.kernel_w;
  const int64_t fits = h - kh + 1;  // rows whose window fits
  uint8_t* down = s.down.data();
  uint8_t* across = s.across.data();
  if (fits > 0) {
    const int64_t len = fits * w;
    std::memcpy(down, x, len);
    for (int64_t a = 1; a < kh; ++a) {
      const uint8_t* xa = x + a * w;
      for (int64_t k = 0; k < len; ++k) down[k] = std::max(down[k], xa[k]);
    }
    // Near each row's end these mix two rows; no output reads those.
    const int64_t starts = len - kw + 1;
    if (starts > 0) {
      std::memcpy(across, down, starts);
      for (int64_t b = 1; b < kw; ++b) {
        const uint8_t* db = down + b;
        for (int64_t k = 0; k < starts; ++k) {
          across[k] = std::max(across[k], db[k]);
        }
      }
    }
  }
  for (int64_t i = 0; i < oh; ++i) {
    const int64_t top = i * p.stride_h - p.pad_h;
    uint8_t* yr = y + i * ow;
    if (top >= 0 && top + kh <= h) {
      const uint8_t* dr = down + top * w;
      const uint8_t* ar = across + top * w;
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t left = j * p.stride_w - p.pad_w;
        if (left >= 0 && left + kw <= w) {
          yr[j] = ar[left];
        } else {  // the padding clips the window on the side
          const int64_t c1 = std::min(left + kw, w);
          uint8_t m = 0;
          for (int64_t c = std::max<int64_t>(left, 0); c < c1; ++c) {
            m = std::max(m, dr[c]);
          }
          yr[j] = m;
        }
      }
      continue;
    }
    // A window the padding clips above or below: its rows one by one.
    const int64_t r0 = std::max<int64_t>(top, 0);
    const int64_t r1 = std::min(top + kh, h);
    uint8_t* v = s.row.data() + p.pad_w;
    std::memcpy(v, x + r0 * w, w);
    for (int64_t r = r0 + 1; r < r1; ++r) {
      const uint8_t* xr = x + r * w;
      for (int64_t j = 0; j < w; ++j) v[j] = std::max(v[j], xr[j]);
    }
    uint8_t* ra = s.row_across.data();
    const int64_t starts = (ow - 1) * p.stride_w + 1;
    std::memcpy(ra, s.row.data(), starts);
    for (int64_t b = 1; b < kw; ++b) {
      const uint8_t* shifted = s.row.data() + b;
      for (int64_t j = 0; j < starts; ++j) ra[j] = std::max(ra[j], shifted[j]);
    }
    for (int64_t j = 0; j < ow; ++j) yr[j] = ra[j * p.stride_w];
  }
}

}  // namespace

void QMaxPool2dU8(int64_t planes, int64_t h, int64_t w, const Pool2dParams& p,
                  const uint8_t* x, uint8_t* y) {
  CHECK_GE(planes, 0) << "QMaxPool2dU8";
  const Shape out = Pool2dOutputShape("QMaxPool2dU8", {planes, 1, h, w}, p);
  CHECK(planes == 0 || (x != nullptr && y != nullptr));
  const int64_t oh = out[2], ow = out[3];
  ParallelFor(planes, ThreadsIf(planes * h * w > kParallelElements),
              [&](int64_t begin, int64_t end, int) {
                MaxPoolScratch scratch(h, w, p.pad_w);
                for (int64_t plane = begin; plane < end; ++plane) {
                  MaxPoolPlaneU8(h, w, oh, ow, p, x + plane * h * w, scratch,
                                 y + plane * oh * ow);
                }
              });
}

}  // namespace dive
