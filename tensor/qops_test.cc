// Tests of the int8 add, requantization, channel concatenation and max
// pooling (tensor/qops.h) against references in double with the documented
// rounding (half to even), compared exactly, on sizes on both sides of the
// threaded and vectorized blocks.

#include "tensor/qops.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace dive {
namespace {

std::vector<uint8_t> RandomBytes(int64_t count, std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<uint8_t> v(count);
  for (uint8_t& x : v) x = static_cast<uint8_t>(byte(rng));
  return v;
}

// The real value of q, requantized: clamp(round_half_even(real / sy) + zy).
uint8_t RefQuantize(double real, QUint8Params y, bool relu) {
  const double q = std::nearbyint(real) + y.zero_point;
  return static_cast<uint8_t>(
      std::clamp(q, relu ? static_cast<double>(y.zero_point) : 0.0, 255.0));
}

uint8_t RefRequantize(uint8_t x, QUint8Params from, QUint8Params to) {
  const double m = static_cast<double>(from.scale) / to.scale;
  const double v = m * (x - from.zero_point);
  return RefQuantize(v, to, false);
}

uint8_t RefAdd(uint8_t a, QUint8Params qa, uint8_t b, QUint8Params qb,
               QUint8Params qy, bool relu) {
  const double ma = static_cast<double>(qa.scale) / qy.scale;
  const double mb = static_cast<double>(qb.scale) / qy.scale;
  // Each product rounded to double on its own (no FMA), as the kernel.
  const double va = ma * (a - qa.zero_point);
  const double vb = mb * (b - qb.zero_point);
  return RefQuantize(va + vb, qy, relu);
}

TEST(QAddU8, MatchesTheDoubleReference) {
  std::mt19937 rng(1);
  const QUint8Params cases[][3] = {
      {{0.05f, 128}, {0.02f, 0}, {0.04f, 3}},
      {{0.1f, 0}, {0.1f, 0}, {0.1f, 0}},  // equal scales: exact sums
      {{0.013f, 255}, {1.7f, 17}, {0.9f, 200}},
      {{1.0f, 0}, {1.0f, 0}, {2.0f, 0}},  // every odd sum a tie
      {{1.0f, 0}, {1.0f, 0}, {0.1f, 0}},  // sums up to 5100 steps: clamped
      {{1.0f, 255}, {1.0f, 255}, {0.1f, 128}},  // and down to -5100
  };
  for (int64_t count : {0, 1, 15, 64, 1000, (1 << 16) + 77, 3 << 17}) {
    const std::vector<uint8_t> a = RandomBytes(count, rng);
    const std::vector<uint8_t> b = RandomBytes(count, rng);
    for (const auto& q : cases) {
      for (bool relu : {false, true}) {
        std::vector<uint8_t> y(count);
        QAddU8(count, a.data(), q[0], b.data(), q[1], q[2], relu, y.data());
        for (int64_t i = 0; i < count; ++i) {
          ASSERT_EQ(y[i], RefAdd(a[i], q[0], b[i], q[1], q[2], relu))
              << "count " << count << " i " << i << " a " << int{a[i]} << " b "
              << int{b[i]} << " relu " << relu;
        }
      }
    }
  }
}

TEST(QAddU8, TiesRoundToEven) {
  // 1 * 1 + 1 * 0 at output scale 2: 0.5 -> 0; 3 -> 1.5 -> 2; 5 -> 2.5 -> 2.
  const uint8_t a[] = {1, 3, 5, 7}, b[] = {0, 0, 0, 0};
  uint8_t y[4];
  QAddU8(4, a, {1.0f, 0}, b, {1.0f, 0}, {2.0f, 0}, false, y);
  EXPECT_EQ(std::vector<uint8_t>(y, y + 4), (std::vector<uint8_t>{0, 2, 2, 4}));
}

TEST(QAddU8, ReluFloorsAtTheZeroPointAndEndsClamp) {
  // a - 10 + b - 10 in scale 1 around zero point 100.
  const uint8_t a[] = {0, 10, 255, 20}, b[] = {0, 10, 255, 5};
  uint8_t y[4], r[4];
  QAddU8(4, a, {1.0f, 10}, b, {1.0f, 10}, {1.0f, 100}, false, y);
  QAddU8(4, a, {1.0f, 10}, b, {1.0f, 10}, {1.0f, 100}, true, r);
  EXPECT_EQ(std::vector<uint8_t>(y, y + 4),
            (std::vector<uint8_t>{80, 100, 255, 105}));
  EXPECT_EQ(std::vector<uint8_t>(r, r + 4),
            (std::vector<uint8_t>{100, 100, 255, 105}));
  // In place.
  uint8_t c[] = {1, 2, 3, 4};
  QAddU8(4, c, {1.0f, 0}, c, {1.0f, 0}, {1.0f, 0}, false, c);
  EXPECT_EQ(std::vector<uint8_t>(c, c + 4), (std::vector<uint8_t>{2, 4, 6, 8}));
}

TEST(QRequantizeU8, MatchesTheDoubleReferenceAndCopiesEqualParams) {
  std::mt19937 rng(2);
  const std::vector<uint8_t> x = RandomBytes(200000, rng);
  for (const auto& [from, to] :
       {std::pair<QUint8Params, QUint8Params>{{0.05f, 128}, {0.02f, 0}},
        {{0.02f, 3}, {0.05f, 250}},
        {{0.3f, 7}, {0.3f, 7}}}) {
    std::vector<uint8_t> y(x.size());
    QRequantizeU8(x.size(), x.data(), from, to, y.data());
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(y[i], RefRequantize(x[i], from, to)) << i;
    }
  }
  std::vector<uint8_t> same = x;
  QRequantizeU8(same.size(), same.data(), {0.3f, 7}, {0.3f, 7}, same.data());
  EXPECT_EQ(same, x);
}

TEST(QConcatChannelsU8, PlacesAndRequantizesEachPart) {
  std::mt19937 rng(3);
  const QUint8Params qy{0.04f, 5};
  for (int64_t n : {1, 3}) {
    for (int64_t plane : {1, 49, 1024}) {
      const int64_t channels[] = {3, 1, 5, 2};
      const QUint8Params params[] = {qy, {0.1f, 0}, {0.01f, 200}, qy};
      std::vector<std::vector<uint8_t>> xs;
      std::vector<QConcatPart> parts;
      for (int p = 0; p < 4; ++p) {
        xs.push_back(RandomBytes(n * channels[p] * plane, rng));
      }
      for (int p = 0; p < 4; ++p) {
        parts.push_back({xs[p].data(), channels[p], params[p]});
      }
      const int64_t c = 3 + 1 + 5 + 2;
      std::vector<uint8_t> y(n * c * plane);
      QConcatChannelsU8(n, plane, parts, qy, y.data());
      for (int64_t i = 0; i < n; ++i) {
        int64_t first = 0;
        for (int p = 0; p < 4; ++p) {
          for (int64_t k = 0; k < channels[p] * plane; ++k) {
            const uint8_t x = xs[p][i * channels[p] * plane + k];
            ASSERT_EQ(y[(i * c + first) * plane + k],
                      RefRequantize(x, params[p], qy))
                << "n " << n << " plane " << plane << " part " << p;
          }
          first += channels[p];
        }
      }
    }
  }
}

// The largest in-image byte of each window, windows as MaxPool2dForward's.
std::vector<uint8_t> RefMaxPool(int64_t planes, int64_t h, int64_t w,
                                const Pool2dParams& p,
                                const std::vector<uint8_t>& x) {
  const int64_t oh = (h + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1;
  const int64_t ow = (w + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1;
  std::vector<uint8_t> y;
  for (int64_t plane = 0; plane < planes; ++plane) {
    for (int64_t i = 0; i < oh; ++i) {
      for (int64_t j = 0; j < ow; ++j) {
        int best = -1;
        for (int64_t a = 0; a < p.kernel_h; ++a) {
          for (int64_t b = 0; b < p.kernel_w; ++b) {
            const int64_t r = i * p.stride_h - p.pad_h + a;
            const int64_t c = j * p.stride_w - p.pad_w + b;
            if (r >= 0 && r < h && c >= 0 && c < w) {
              best = std::max<int>(best, x[(plane * h + r) * w + c]);
            }
          }
        }
        y.push_back(static_cast<uint8_t>(best));
      }
    }
  }
  return y;
}

// Square and oblong windows, strides 1 to 3, with and without padding, on
// planes from one pixel up, threaded and not.
TEST(QMaxPool2dU8, MatchesTheReference) {
  std::mt19937 rng(4);
  const Pool2dParams windows[] = {{3, 3, 2, 2, 1, 1},
                                  {2, 2, 2, 2},
                                  {3, 3, 1, 1, 1, 1},
                                  {3, 2, 3, 1, 1, 0},
                                  {1, 1, 2, 2},
                                  {5, 3, 2, 3, 2, 1},
                                  // half-window padding: w + 1 starts
                                  {2, 2, 1, 1, 1, 1}};
  const int64_t sizes[][3] = {{1, 5, 5}, {3, 7, 9}, {64, 48, 48}, {2, 1, 6}};
  for (const Pool2dParams& p : windows) {
    for (const auto& [planes, h, w] : sizes) {
      if (h + 2 * p.pad_h < p.kernel_h || w + 2 * p.pad_w < p.kernel_w) {
        continue;
      }
      const std::vector<uint8_t> x = RandomBytes(planes * h * w, rng);
      const std::vector<uint8_t> want = RefMaxPool(planes, h, w, p, x);
      std::vector<uint8_t> y(want.size());
      QMaxPool2dU8(planes, h, w, p, x.data(), y.data());
      EXPECT_EQ(y, want) << p.kernel_h << "x" << p.kernel_w << " stride "
                         << p.stride_h << "x" << p.stride_w << " pad "
                         << p.pad_h << "x" << p.pad_w << " on " << planes
                         << " x " << h << "x" << w;
    }
  }
}

TEST(QOpsDeathTest, BadScalesAndZeroPointsAreProgrammingErrors) {
  uint8_t a[1] = {0}, y[1];
  EXPECT_DEATH(QAddU8(1, a, {0.0f, 0}, a, {1.0f, 0}, {1.0f, 0}, false, y),
               "scale 0 must be finite and > 0");
  EXPECT_DEATH(QAddU8(1, a, {1.0f, 0}, a, {1.0f, 0}, {NAN, 0}, false, y),
               "QAddU8 output");
  EXPECT_DEATH(QRequantizeU8(1, a, {1.0f, 256}, {1.0f, 0}, y),
               "zero point 256 outside 0..255");
  EXPECT_DEATH(QConcatChannelsU8(1, 1, {{nullptr, 1, {1.0f, 0}}}, {1.0f, 0}, y),
               "part 0 is null");
  EXPECT_DEATH(QMaxPool2dU8(1, 1, 1, {3, 3, 1, 1, 2, 2}, a, y),
               "QMaxPool2dU8: padding must be at most half the kernel size "
               "\\(x \\[1, 1, 1, 1\\], kernel 3x3, stride 1x1, padding "
               "2x2\\)");
  EXPECT_DEATH(QMaxPool2dU8(1, 2, 2, {3, 3, 1, 1, 0, 0}, a, y),
               "QMaxPool2dU8: .*smaller than the kernel");
}

}  // namespace
}  // namespace dive
