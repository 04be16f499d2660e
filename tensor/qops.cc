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
  // Plain loops over blocks: -O3 vectorizes the widening, the products in
  // double, the rounding (vrndscalepd) and the narrowing.
  ParallelFor(count, ThreadsIf(count > kParallelElements),
              [&](int64_t begin, int64_t end, int) {
                for (int64_t i = begin; i < end; ++i) {
                  const double v = ma * static_cast<double>(a[i] - za) +
                                   mb * static_cast<double>(b[i] - zb);
                  const double q = std::nearbyint(v) + zy;
                  y[i] = static_cast<uint8_t>(std::min(std::max(q, lo), 255.0));
                }
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

}  // namespace dive
