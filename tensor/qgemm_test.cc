// Tests of the int8 GEMM and convolution (tensor/qgemm.h, tensor/qconv.h):
// every kernel path against references computed with exact integer sums
// (int64) and the requantization in double; paths this CPU lacks report
// themselves skipped. Values are compared exactly.

#include "tensor/qgemm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tensor/cpu.h"
#include "tensor/qconv.h"
#include "tensor/qgemm_kernels.h"
#include "tensor/testing.h"

namespace dive {
namespace {

// ---- References -------------------------------------------------------------

// acc[i, j] = sum over p of (a[i, p] - za) * b[p, j], in int64.
std::vector<int64_t> RefGemm(int64_t m, int64_t n, int64_t k,
                             const std::vector<uint8_t>& a, int za,
                             const std::vector<int8_t>& b) {
  std::vector<int64_t> acc(m * n, 0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t p = 0; p < k; ++p) {
      const int64_t x = static_cast<int64_t>(a[i * k + p]) - za;
      for (int64_t j = 0; j < n; ++j) acc[i * n + j] += x * b[p * n + j];
    }
  }
  return acc;
}

template <typename T>
std::vector<T> RandomInts(size_t size, int lo, int hi, std::mt19937* rng) {
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<T> v(size);
  for (T& x : v) x = static_cast<T>(dist(*rng));
  return v;
}

// ---- One test suite per path
// -------------------------------------------------

class QGemmPathTest : public ::testing::TestWithParam<QGemmPath> {
 protected:
  void SetUp() override {
    if (absl::Status s = QGemmPathSupported(GetParam()); !s.ok()) {
      GTEST_SKIP() << "skipped: " << s.message();
    }
  }
  QGemmPath path() const { return GetParam(); }
};

std::string PathTestName(const ::testing::TestParamInfo<QGemmPath>& info) {
  return std::string(QGemmPathName(info.param));
}

INSTANTIATE_TEST_SUITE_P(Paths, QGemmPathTest,
                         ::testing::ValuesIn(kAllQGemmPaths), PathTestName);

// int32 outputs: the exact sums plus the bias, for every edge of every tile
// shape (1, 3, 17, 63, 64, 65 along m, n and k) and zero points 0, 128, 255.
TEST_P(QGemmPathTest, Int32SumsAreExact) {
  std::mt19937 rng(1);
  for (int64_t m : {1, 3, 17, 65}) {
    for (int64_t n : {1, 17, 63, 64, 65}) {
      for (int64_t k : {1, 3, 17, 63, 64, 65}) {
        const auto a = RandomInts<uint8_t>(m * k, 0, 255, &rng);
        const auto b = RandomInts<int8_t>(k * n, -128, 127, &rng);
        const auto bias = RandomInts<int32_t>(n, -100000, 100000, &rng);
        absl::StatusOr<QPackedWeights> w =
            PackQGemmWeights(path(), k, n, b.data(), n, false);
        ASSERT_TRUE(w.ok()) << w.status();
        for (int za : {0, 128, 255}) {
          const std::vector<int64_t> want = RefGemm(m, n, k, a, za, b);
          QRequantization rq;
          rq.output = QOutputType::kInt32;
          rq.bias = bias.data();
          std::vector<int32_t> c(m * n, -7);
          ASSERT_TRUE(QGemm(m, a.data(), k, za, *w, rq, c.data(), n).ok());
          for (int64_t i = 0; i < m * n; ++i) {
            ASSERT_EQ(c[i], want[i] + bias[i % n])
                << "m " << m << " n " << n << " k " << k << " za " << za
                << " at " << i;
          }
        }
      }
    }
  }
}

// Large k, and the largest: the sums of 32768 products of 255 and -128 (and
// of -255 and -128 through the zero point) are exact.
TEST_P(QGemmPathTest, LargeKIsExact) {
  std::mt19937 rng(2);
  for (int64_t k : {1000, 4099}) {
    const int64_t m = 7, n = 70;
    const auto a = RandomInts<uint8_t>(m * k, 0, 255, &rng);
    const auto b = RandomInts<int8_t>(k * n, -128, 127, &rng);
    absl::StatusOr<QPackedWeights> w =
        PackQGemmWeights(path(), k, n, b.data(), n, false);
    ASSERT_TRUE(w.ok()) << w.status();
    QRequantization rq;
    rq.output = QOutputType::kInt32;
    std::vector<int32_t> c(m * n);
    ASSERT_TRUE(QGemm(m, a.data(), k, 77, *w, rq, c.data(), n).ok());
    const std::vector<int64_t> want = RefGemm(m, n, k, a, 77, b);
    for (int64_t i = 0; i < m * n; ++i) ASSERT_EQ(c[i], want[i]) << i;
  }
  const int64_t k = kQGemmMaxK, m = 2, n = 3;
  const std::vector<int8_t> b(k * n, -128);
  absl::StatusOr<QPackedWeights> w =
      PackQGemmWeights(path(), k, n, b.data(), n, false);
  ASSERT_TRUE(w.ok()) << w.status();
  QRequantization rq;
  rq.output = QOutputType::kInt32;
  const std::vector<int32_t> bias(n, -kQGemmMaxBias);
  rq.bias = bias.data();
  for (const auto& [value, za] : {std::pair<uint8_t, int>{255, 0}, {0, 255}}) {
    const std::vector<uint8_t> a(m * k, value);
    std::vector<int32_t> c(m * n);
    ASSERT_TRUE(QGemm(m, a.data(), k, za, *w, rq, c.data(), n).ok());
    const int64_t want = (int64_t{value} - za) * -128 * k - kQGemmMaxBias;
    for (int32_t x : c) EXPECT_EQ(x, want);
  }
}

// uint8 and float outputs equal the double reference's rounding, for output
// zero points 0, 128, 255, ReLU on and off, per-channel scales.
TEST_P(QGemmPathTest, RequantizedOutputsMatchTheDoubleReference) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> unit(0.5f, 1.5f);
  for (const auto& [m, n, k] :
       std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 1, 1},
                                                          {3, 17, 63},
                                                          {17, 65, 64},
                                                          {65, 3, 65},
                                                          {6, 64, 300},
                                                          {7, 130, 1000}}) {
    const auto a = RandomInts<uint8_t>(m * k, 0, 255, &rng);
    const auto b = RandomInts<int8_t>(k * n, -128, 127, &rng);
    const auto bias = RandomInts<int32_t>(n, -50000, 50000, &rng);
    // Scales that spread the outputs over 0..255 and past both ends.
    std::vector<float> scale(n);
    for (float& s : scale) s = unit(rng) * 100.0f / (7400.0f * std::sqrt(k));
    absl::StatusOr<QPackedWeights> w =
        PackQGemmWeights(path(), k, n, b.data(), n, false);
    ASSERT_TRUE(w.ok()) << w.status();
    for (int za : {0, 128, 255}) {
      const std::vector<int64_t> acc = RefGemm(m, n, k, a, za, b);
      for (int zo : {0, 128, 255}) {
        for (bool relu : {false, true}) {
          QRequantization rq;
          rq.scale = scale.data();
          rq.bias = bias.data();
          rq.zero_point = zo;
          rq.relu = relu;
          std::vector<uint8_t> c(m * n);
          ASSERT_TRUE(QGemm(m, a.data(), k, za, *w, rq, c.data(), n).ok());
          rq.output = QOutputType::kFloat;
          std::vector<float> f(m * n);
          ASSERT_TRUE(QGemm(m, a.data(), k, za, *w, rq, f.data(), n).ok());
          for (int64_t i = 0; i < m * n; ++i) {
            const int64_t v = acc[i] + bias[i % n];
            ASSERT_EQ(c[i], RefUint8(v, scale[i % n], zo, relu))
                << "m " << m << " n " << n << " k " << k << " za " << za
                << " zo " << zo << " relu " << relu << " at " << i;
            ASSERT_EQ(f[i], RefFloat(v, scale[i % n], relu)) << i;
          }
        }
      }
    }
  }
}

// Halves round to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0, -1.5 -> -2.
TEST_P(QGemmPathTest, HalvesRoundToEven) {
  const std::vector<int8_t> b = {1, 3, 5, -1, -3};
  absl::StatusOr<QPackedWeights> w =
      PackQGemmWeights(path(), 1, 5, b.data(), 5, false);
  ASSERT_TRUE(w.ok()) << w.status();
  const std::vector<float> scale(5, 0.5f);
  QRequantization rq;
  rq.scale = scale.data();
  rq.zero_point = 128;
  const uint8_t a = 8;  // a - za = 1
  std::vector<uint8_t> c(5);
  ASSERT_TRUE(QGemm(1, &a, 1, 7, *w, rq, c.data(), 5).ok());
  EXPECT_EQ(c, (std::vector<uint8_t>{128, 130, 130, 128, 126}));
}

// B stored [n, k] (a Linear layer's weight), row strides past the rows, and
// two threads or one (products past 2^20 multiply-adds: the columns split
// between the threads where they fill two panels of the kernel, else the
// rows): the same values.
TEST_P(QGemmPathTest, TransposedWeightsStridesAndThreads) {
  std::mt19937 rng(4);
  for (const auto& [m, n, k] :
       std::vector<std::tuple<int64_t, int64_t, int64_t>>{{70, 90, 200},
                                                          {70, 40, 400}}) {
    const int64_t lda = k + 10, ldc = n + 10, ldw = k + 5;
    const auto a = RandomInts<uint8_t>(m * lda, 0, 255, &rng);
    const auto bt = RandomInts<int8_t>(n * ldw, -128, 127, &rng);
    std::vector<int8_t> b(k * n);  // [k, n]
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t p = 0; p < k; ++p) b[p * n + j] = bt[j * ldw + p];
    }
    std::vector<uint8_t> a_dense(m * k);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t p = 0; p < k; ++p) a_dense[i * k + p] = a[i * lda + p];
    }
    const std::vector<int64_t> want = RefGemm(m, n, k, a_dense, 3, b);
    absl::StatusOr<QPackedWeights> w =
        PackQGemmWeights(path(), k, n, bt.data(), ldw, true);
    ASSERT_TRUE(w.ok()) << w.status();
    QRequantization rq;
    rq.output = QOutputType::kInt32;
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      std::vector<int32_t> c(m * ldc, -1);
      ASSERT_TRUE(QGemm(m, a.data(), lda, 3, *w, rq, c.data(), ldc).ok());
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < ldc; ++j) {
          ASSERT_EQ(c[i * ldc + j], j < n ? want[i * n + j] : -1)
              << "n " << n << " threads " << threads << " at " << i << ", "
              << j;
        }
      }
    }
  }
  omp_set_num_threads(omp_get_num_procs());
}

// ---- Convolution
// -------------------------------------------------------------

struct ConvCase {
  int64_t n, c, h, w, oc, kh, kw, sh, sw, ph, pw;

  QConv2dParams params() const {
    QConv2dParams p;
    p.stride_h = sh;
    p.stride_w = sw;
    p.pad_h = ph;
    p.pad_w = pw;
    return p;
  }
};

// acc [n, oc, oh, ow], x read as za outside the image.
std::vector<int64_t> RefConv(const ConvCase& s, int64_t oh, int64_t ow,
                             const std::vector<uint8_t>& x, int za,
                             const std::vector<int8_t>& w) {
  std::vector<int64_t> acc(s.n * s.oc * oh * ow, 0);
  for (int64_t b = 0; b < s.n; ++b) {
    for (int64_t o = 0; o < s.oc; ++o) {
      for (int64_t i = 0; i < oh; ++i) {
        for (int64_t j = 0; j < ow; ++j) {
          int64_t sum = 0;
          for (int64_t c = 0; c < s.c; ++c) {
            for (int64_t u = 0; u < s.kh; ++u) {
              for (int64_t v = 0; v < s.kw; ++v) {
                const int64_t ih = i * s.sh - s.ph + u,
                              iw = j * s.sw - s.pw + v;
                const int64_t xv =
                    ih >= 0 && ih < s.h && iw >= 0 && iw < s.w
                        ? x[((b * s.c + c) * s.h + ih) * s.w + iw]
                        : za;
                sum += (xv - za) * w[((o * s.c + c) * s.kh + u) * s.kw + v];
              }
            }
          }
          acc[((b * s.oc + o) * oh + i) * ow + j] = sum;
        }
      }
    }
  }
  return acc;
}

// Dive's own kernels (tensor/qconv_onednn_test.cc tests the oneDNN path
// that kAuto picks for some of these shapes on avx512_vnni).
TEST_P(QGemmPathTest, Conv2dMatchesTheExactReference) {
  const ScopedQConvLibrary dive_kernels(QConvLibrary::kDive);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> unit(0.5f, 1.5f);
  const std::vector<ConvCase> cases = {
      {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0},     // one pixel
      {2, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1},     // padding on every side
      {3, 4, 10, 10, 17, 3, 3, 2, 2, 1, 1},  // stride 2
      {2, 16, 5, 5, 65, 1, 1, 1, 1, 0, 0},   // 1x1: its own im2col
      {1, 3, 11, 13, 8, 5, 3, 2, 1, 0, 2},   // KH != KW, SH != SW
      {2, 64, 6, 6, 64, 3, 3, 1, 1, 1, 1},   // k = 576
      {1, 2, 3, 3, 3, 3, 3, 1, 1, 4, 4},     // padding past the kernel
      {5, 1, 28, 28, 6, 5, 5, 1, 1, 2, 2},   // LeNet's first layer
      {1, 64, 20, 20, 8, 3, 3, 1, 1, 1, 1},  // several blocks per image
      {2, 8, 16, 16, 70, 1, 1, 1, 1, 0, 0},  // 1x1 on whole panels
      {2, 8, 40, 40, 16, 1, 1, 2, 2, 0, 0},  // a shortcut: 16 columns at once
      {1, 4, 45, 47, 8, 3, 3, 2, 2, 1, 1},   // stride 2, odd sizes, 24 columns
  };
  for (const ConvCase& s : cases) {
    const int64_t oh = (s.h + 2 * s.ph - s.kh) / s.sh + 1;
    const int64_t ow = (s.w + 2 * s.pw - s.kw) / s.sw + 1;
    const int64_t k = s.c * s.kh * s.kw;
    const auto x = RandomInts<uint8_t>(s.n * s.c * s.h * s.w, 0, 255, &rng);
    const auto w = RandomInts<int8_t>(s.oc * k, -128, 127, &rng);
    const auto bias = RandomInts<int32_t>(s.oc, -50000, 50000, &rng);
    std::vector<float> scale(s.oc);
    for (float& v : scale) v = unit(rng) * 100.0f / (7400.0f * std::sqrt(k));
    absl::StatusOr<QPackedWeights> packed =
        PackQConv2dWeights(path(), s.oc, s.c, s.kh, s.kw, w.data());
    ASSERT_TRUE(packed.ok()) << packed.status();
    const QConv2dParams p = s.params();
    const int64_t plane = oh * ow, size = s.n * s.oc * plane;
    for (int za : {0, 128, 255}) {
      const std::vector<int64_t> acc = RefConv(s, oh, ow, x, za, w);
      QRequantization rq;
      for (int threads : {1, 2}) {
        omp_set_num_threads(threads);
        rq.output = QOutputType::kInt32;
        rq.bias = bias.data();
        std::vector<int32_t> y32(size);
        ASSERT_TRUE(
            QConv2d(s.n, s.h, s.w, x.data(), za, *packed, p, rq, y32.data())
                .ok());
        for (int64_t i = 0; i < size; ++i) {
          ASSERT_EQ(y32[i], acc[i] + bias[i / plane % s.oc])
              << "case c " << s.c << " oc " << s.oc << " za " << za
              << " threads " << threads << " at " << i;
        }
      }
      omp_set_num_threads(omp_get_num_procs());
      for (int zo : {0, 128, 255}) {
        for (bool relu : {false, true}) {
          rq.output = QOutputType::kUint8;
          rq.scale = scale.data();
          rq.zero_point = zo;
          rq.relu = relu;
          std::vector<uint8_t> y(size);
          ASSERT_TRUE(
              QConv2d(s.n, s.h, s.w, x.data(), za, *packed, p, rq, y.data())
                  .ok());
          for (int64_t i = 0; i < size; ++i) {
            const int64_t o = i / plane % s.oc;
            ASSERT_EQ(y[i], RefUint8(acc[i] + bias[o], scale[o], zo, relu))
                << "case c " << s.c << " oc " << s.oc << " za " << za << " zo "
                << zo << " relu " << relu << " at " << i;
          }
        }
      }
    }
  }
}

// ---- avx2_u7: VPMADDUBSW for activations within 0..127
// ------------------------
//
// The kernels themselves on hand-packed quads (so that the fast one is known
// to run), then QGemm and QConv2d on the path: exact with 7-bit
// activations, and exact where a byte or the padding's zero point exceeds
// 127 (the driver takes the split kernels then).

class Avx2U7Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (absl::Status s = QGemmPathSupported(QGemmPath::kAvx2U7); !s.ok()) {
      GTEST_SKIP() << "skipped: " << s.message();
    }
  }
};

// One 6 x 16 tile of int32 sums of u [6, k] (uint8) by s [k, 16] (int8) on
// `kernel`, the uint8 operand on the left (left_u8) or, transposed, on the
// right (right_u8: C^T = s^T u^T).
std::vector<int32_t> KernelTile(const qgemm_internal::QKernel& kernel,
                                bool left_u8, int64_t k,
                                const std::vector<uint8_t>& u,
                                const std::vector<int8_t>& s) {
  const int mr = 6, nr = 16;
  const int64_t k4 = (k + 3) / 4 * 4;
  // left_u8: L = u [6, k], R = s [k, 16]; else L = s^T [16 -> 6 rows per
  // panel: only the first 6 columns of s], R = u^T.
  std::vector<uint8_t> l(k4 * mr, 0);
  alignas(64) static uint8_t r[1 << 20];
  std::fill(r, r + k4 * nr, 0);
  for (int64_t p = 0; p < k; ++p) {
    for (int i = 0; i < mr; ++i) {
      l[(p / 4 * mr + i) * 4 + p % 4] =
          left_u8 ? u[i * k + p] : static_cast<uint8_t>(s[p * nr + i]);
    }
    for (int j = 0; j < nr; ++j) {
      r[(p / 4 * nr + j) * 4 + p % 4] =
          left_u8 ? static_cast<uint8_t>(s[p * nr + j]) : u[(j % 6) * k + p];
    }
  }
  const std::vector<int32_t> zeros(nr, 0);
  std::vector<int32_t> c(mr * nr, -1);
  qgemm_internal::QTileEpilogue e;
  e.store = qgemm_internal::QStore::kInt32;
  e.channel_is_row = !left_u8;
  e.offset = zeros.data();
  e.c = c.data();
  e.ldc = nr;
  (left_u8 ? kernel.left_u8 : kernel.right_u8)(k4 / 4, l.data(), r, e, mr, nr);
  return c;
}

// The exact tile of KernelTile.
std::vector<int64_t> RefTile(bool left_u8, int64_t k,
                             const std::vector<uint8_t>& u,
                             const std::vector<int8_t>& s) {
  std::vector<int64_t> c(6 * 16, 0);
  for (int i = 0; i < 6; ++i) {
    for (int j = 0; j < 16; ++j) {
      for (int64_t p = 0; p < k; ++p) {
        c[i * 16 + j] += left_u8 ? int64_t{u[i * k + p]} * s[p * 16 + j]
                                 : int64_t{s[p * 16 + i]} * u[(j % 6) * k + p];
      }
    }
  }
  return c;
}

// Worst cases of the fast kernel: every activation 127 against weights all
// -128 or all 127, along the largest k (the pair sums -32512 and 32258 are
// as far as 7 bits go), and random 7-bit ones; each way round.
TEST_F(Avx2U7Test, FastKernelIsExactWithin127) {
  const qgemm_internal::QKernel fast = qgemm_internal::Avx2U7QKernel(true);
  std::mt19937 rng(11);
  for (bool left_u8 : {true, false}) {
    for (int8_t wv : {-128, 127}) {
      const int64_t k = kQGemmMaxK;
      const std::vector<uint8_t> u(6 * k, 127);
      const std::vector<int8_t> s(k * 16, wv);
      const std::vector<int32_t> c = KernelTile(fast, left_u8, k, u, s);
      for (int32_t x : c) ASSERT_EQ(x, int64_t{127} * wv * k);
    }
    for (int64_t k : {1, 3, 4, 61, 1000}) {
      const auto u = RandomInts<uint8_t>(6 * k, 0, 127, &rng);
      const auto s = RandomInts<int8_t>(k * 16, -128, 127, &rng);
      const std::vector<int32_t> c = KernelTile(fast, left_u8, k, u, s);
      const std::vector<int64_t> want = RefTile(left_u8, k, u, s);
      for (int i = 0; i < 6 * 16; ++i) ASSERT_EQ(c[i], want[i]) << k;
    }
  }
}

// Why the driver checks the bytes: above 127 the fast kernel's int16 pair
// sums saturate (2 * 200 * 127 = 50800, 2 * 129 * -128 = -33024; 128 alone
// still fits, 2 * 128 * -128 = -32768, but 7 bits is the rule, as
// PyTorch's reduce_range), while the split kernel is exact for any byte.
TEST_F(Avx2U7Test, BytesAbove127NeedTheSplitKernel) {
  const qgemm_internal::QKernel fast = qgemm_internal::Avx2U7QKernel(true);
  const qgemm_internal::QKernel split = qgemm_internal::Avx2U7QKernel(false);
  const int64_t k = 64;
  for (bool left_u8 : {true, false}) {
    for (uint8_t uv : {128, 200, 255}) {
      const std::vector<uint8_t> u(6 * k, uv);
      const std::vector<int8_t> s(k * 16, 127);
      const int64_t want = int64_t{uv} * 127 * k;
      for (int32_t x : KernelTile(split, left_u8, k, u, s)) {
        ASSERT_EQ(x, want);
      }
      // 2 * 128 * 127 = 32512 fits int16; 2 * 200 * 127 does not.
      const std::vector<int32_t> c = KernelTile(fast, left_u8, k, u, s);
      if (uv > 128) {
        EXPECT_NE(c[0], want) << "the fast kernel did not saturate at " << +uv;
      }
    }
    const std::vector<uint8_t> u(6 * k, 129);
    const std::vector<int8_t> s(k * 16, -128);
    EXPECT_NE(KernelTile(fast, left_u8, k, u, s)[0], int64_t{129} * -128 * k);
    for (int32_t x : KernelTile(split, left_u8, k, u, s)) {
      ASSERT_EQ(x, int64_t{129} * -128 * k);
    }
  }
}

// QGemm with 7-bit activations (the fast kernels), zero points 0..127, int32
// and uint8 outputs, on 1 and 2 threads; then the same with one byte of 128
// or 255 among them, and with the largest k at 127 against -128.
TEST_F(Avx2U7Test, QGemmIsExactWithAndWithoutBytesAbove127) {
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> unit(0.5f, 1.5f);
  for (int64_t m : {1, 7, 65}) {
    for (int64_t n : {1, 17, 64}) {
      for (int64_t k : {1, 5, 64, 259}) {
        auto a = RandomInts<uint8_t>(m * k, 0, 127, &rng);
        const auto b = RandomInts<int8_t>(k * n, -128, 127, &rng);
        const auto bias = RandomInts<int32_t>(n, -100000, 100000, &rng);
        std::vector<float> scale(n);
        for (float& v : scale) v = unit(rng) / (50.0f * std::sqrt(k));
        absl::StatusOr<QPackedWeights> w =
            PackQGemmWeights(QGemmPath::kAvx2U7, k, n, b.data(), n, false);
        ASSERT_TRUE(w.ok()) << w.status();
        for (int above : {0, 128, 255}) {
          if (above != 0) a[(m * k) / 2] = static_cast<uint8_t>(above);
          for (int za : {0, 64, 127}) {
            const std::vector<int64_t> want = RefGemm(m, n, k, a, za, b);
            for (int threads : {1, 2}) {
              omp_set_num_threads(threads);
              QRequantization rq;
              rq.output = QOutputType::kInt32;
              rq.bias = bias.data();
              std::vector<int32_t> c(m * n);
              ASSERT_TRUE(QGemm(m, a.data(), k, za, *w, rq, c.data(), n).ok());
              for (int64_t i = 0; i < m * n; ++i) {
                ASSERT_EQ(c[i], want[i] + bias[i % n])
                    << "m " << m << " n " << n << " k " << k << " za " << za
                    << " byte " << above << " at " << i;
              }
              rq.output = QOutputType::kUint8;
              rq.scale = scale.data();
              rq.zero_point = 3;
              rq.relu = true;
              std::vector<uint8_t> y(m * n);
              ASSERT_TRUE(QGemm(m, a.data(), k, za, *w, rq, y.data(), n).ok());
              for (int64_t i = 0; i < m * n; ++i) {
                ASSERT_EQ(y[i], RefUint8(want[i] + bias[i % n], scale[i % n], 3,
                                         true))
                    << "m " << m << " n " << n << " k " << k << " at " << i;
              }
            }
          }
        }
      }
    }
  }
  omp_set_num_threads(omp_get_num_procs());
  const int64_t k = kQGemmMaxK, m = 3, n = 19;
  for (int8_t wv : {-128, 127}) {
    const std::vector<int8_t> b(k * n, wv);
    absl::StatusOr<QPackedWeights> w =
        PackQGemmWeights(QGemmPath::kAvx2U7, k, n, b.data(), n, false);
    ASSERT_TRUE(w.ok()) << w.status();
    const std::vector<uint8_t> a(m * k, 127);
    QRequantization rq;
    rq.output = QOutputType::kInt32;
    std::vector<int32_t> c(m * n);
    ASSERT_TRUE(QGemm(m, a.data(), k, 0, *w, rq, c.data(), n).ok());
    for (int32_t x : c) EXPECT_EQ(x, int64_t{127} * wv * k);
  }
}

// QConv2d with 7-bit activations, by the im2col and without it (stride 1),
// zero points 0 and 127; then a byte of 128 in the input, and a zero point
// of 128 (the padding's bytes): exact either way.
TEST_F(Avx2U7Test, QConv2dIsExactWithAndWithoutBytesAbove127) {
  std::mt19937 rng(13);
  const std::vector<ConvCase> cases = {
      {2, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1},     // padding on every side
      {3, 4, 10, 10, 17, 3, 3, 2, 2, 1, 1},  // stride 2
      {2, 64, 6, 6, 64, 3, 3, 1, 1, 1, 1},   // k = 576
      {1, 64, 20, 20, 8, 3, 3, 1, 1, 1, 1},  // without im2col
      {2, 8, 16, 16, 70, 1, 1, 1, 1, 0, 0},  // 1x1 on whole panels
      {2, 8, 40, 40, 16, 1, 1, 2, 2, 0, 0},  // a shortcut: 16 columns at once
      {1, 4, 45, 47, 8, 3, 3, 2, 2, 1, 1},   // stride 2, odd sizes, 24 columns
  };
  for (const ConvCase& s : cases) {
    const int64_t oh = (s.h + 2 * s.ph - s.kh) / s.sh + 1;
    const int64_t ow = (s.w + 2 * s.pw - s.kw) / s.sw + 1;
    const int64_t k = s.c * s.kh * s.kw;
    auto x = RandomInts<uint8_t>(s.n * s.c * s.h * s.w, 0, 127, &rng);
    const auto w = RandomInts<int8_t>(s.oc * k, -128, 127, &rng);
    absl::StatusOr<QPackedWeights> packed =
        PackQConv2dWeights(QGemmPath::kAvx2U7, s.oc, s.c, s.kh, s.kw, w.data());
    ASSERT_TRUE(packed.ok()) << packed.status();
    const QConv2dParams p = s.params();
    const int64_t size = s.n * s.oc * oh * ow;
    // (byte above 127 or 0, zero point)
    for (const auto& [above, za] : std::vector<std::pair<int, int>>{
             {0, 0}, {0, 127}, {0, 128}, {128, 5}, {255, 127}}) {
      if (above != 0) x[x.size() / 3] = static_cast<uint8_t>(above);
      const std::vector<int64_t> acc = RefConv(s, oh, ow, x, za, w);
      QRequantization rq;
      rq.output = QOutputType::kInt32;
      std::vector<int32_t> y(size);
      ASSERT_TRUE(
          QConv2d(s.n, s.h, s.w, x.data(), za, *packed, p, rq, y.data()).ok());
      for (int64_t i = 0; i < size; ++i) {
        ASSERT_EQ(y[i], acc[i])
            << "case c " << s.c << " oc " << s.oc << " byte " << above << " za "
            << za << " at " << i;
      }
    }
  }
}

// avx2_u7 where the default is avx2, and only for 7-bit activations.
TEST(QGemmTest, SevenBitActivationsTakeAvx2U7InsteadOfAvx2) {
  const QGemmPath full = DefaultQGemmPath(), reduced = DefaultQGemmPath(true);
  EXPECT_NE(full, QGemmPath::kAvx2U7);
  EXPECT_EQ(reduced, full == QGemmPath::kAvx2 ? QGemmPath::kAvx2U7 : full);
  EXPECT_EQ(*ParseQGemmPath("avx2_u7"), QGemmPath::kAvx2U7);
  EXPECT_FALSE(ParseQGemmPath("avx3").ok());
}

// ---- Errors and path selection (no kernel runs)
// ------------------------------

TEST(QGemmTest, BadArgumentsAreErrors) {
  const QGemmPath path = DefaultQGemmPath();
  const std::vector<int8_t> b(4 * 3, 1);
  EXPECT_EQ(PackQGemmWeights(path, 0, 3, b.data(), 3, false).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PackQGemmWeights(path, kQGemmMaxK + 1, 3, b.data(), 3, false)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PackQGemmWeights(path, 4, 3, b.data(), 2, false).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<QPackedWeights> w =
      PackQGemmWeights(path, 4, 3, b.data(), 3, false);
  ASSERT_TRUE(w.ok());
  const std::vector<uint8_t> a(2 * 4, 1);
  std::vector<uint8_t> c(2 * 3);
  std::vector<float> scale(3, 0.1f);
  QRequantization rq;
  rq.scale = scale.data();
  const auto code = [&](int za, const QRequantization& r) {
    return QGemm(2, a.data(), 4, za, *w, r, c.data(), 3).code();
  };
  EXPECT_EQ(code(0, rq), absl::StatusCode::kOk);
  EXPECT_EQ(code(-1, rq), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(256, rq), absl::StatusCode::kInvalidArgument);
  for (float bad : {0.0f, -1.0f, std::nanf(""), INFINITY}) {
    scale[1] = bad;
    const absl::Status s = QGemm(2, a.data(), 4, 0, *w, rq, c.data(), 3);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("scale[1]"), std::string::npos) << s;
  }
  scale[1] = 0.1f;
  for (int zo : {-1, 256}) {
    QRequantization r = rq;
    r.zero_point = zo;
    EXPECT_EQ(code(0, r), absl::StatusCode::kInvalidArgument) << zo;
  }
  const std::vector<int32_t> bias = {0, kQGemmMaxBias + 1, 0};
  QRequantization r = rq;
  r.bias = bias.data();
  EXPECT_EQ(code(0, r), absl::StatusCode::kInvalidArgument);
  r = rq;
  r.output = QOutputType::kInt32;
  r.relu = true;
  EXPECT_EQ(code(0, r), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QGemm(0, a.data(), 4, 0, *w, rq, c.data(), 3).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QGemm(2, a.data(), 3, 0, *w, rq, c.data(), 3).code(),
            absl::StatusCode::kInvalidArgument);
  // Weights packed for the other operation.
  absl::StatusOr<QPackedWeights> conv_w =
      PackQConv2dWeights(path, 3, 1, 2, 2, b.data());
  ASSERT_TRUE(conv_w.ok());
  EXPECT_EQ(QGemm(2, a.data(), 4, 0, *conv_w, rq, c.data(), 3).code(),
            absl::StatusCode::kInvalidArgument);
  QConv2dParams p;
  EXPECT_EQ(QConv2d(1, 2, 2, a.data(), 0, *w, p, rq, c.data()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QConv2d(1, 1, 1, a.data(), 0, *conv_w, p, rq, c.data()).code(),
            absl::StatusCode::kInvalidArgument)
      << "input smaller than the kernel";
  p.stride_h = 0;
  EXPECT_EQ(QConv2d(1, 2, 2, a.data(), 0, *conv_w, p, rq, c.data()).code(),
            absl::StatusCode::kInvalidArgument);
  p = QConv2dParams();
  EXPECT_EQ(QConv2d(1, 2, 2, a.data(), 300, *conv_w, p, rq, c.data()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QConv2d(1, 2, 2, a.data(), 0, *conv_w, p, rq, c.data()).code(),
            absl::StatusCode::kOk);
  EXPECT_EQ(PackQConv2dWeights(path, 3, 0, 2, 2, b.data()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(QGemmTest, PathsTheCpuLacksAreRefused) {
  for (QGemmPath path : kAllQGemmPaths) {
    const absl::Status s = QGemmPathSupported(path);
    if (s.ok()) continue;
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    const int8_t b = 1;
    EXPECT_EQ(PackQGemmWeights(path, 1, 1, &b, 1, false).status().code(),
              absl::StatusCode::kFailedPrecondition)
        << QGemmPathName(path);
  }
}

TEST(QGemmTest, DefaultPathIsTheBestPresentBelowAmx) {
  const QGemmPath path = DefaultQGemmPath();
  EXPECT_TRUE(QGemmPathSupported(path).ok());
  EXPECT_NE(path, QGemmPath::kAmx);
  if (std::getenv("DIVE_QGEMM_PATH") != nullptr) return;  // chosen there
  if (ActiveIsa() >= Isa::kAvx512 &&
      QGemmPathSupported(QGemmPath::kAvx512Vnni).ok()) {
    EXPECT_EQ(path, QGemmPath::kAvx512Vnni);
  }
}

#ifdef DIVE_QGEMM_TEST_AMX_EMULATED
// The emulated kernel passes the AMX path's self-check, so that the tests
// above run it instead of skipping it.
TEST(QGemmTest, EmulatedAmxPassesTheSelfCheck) {
  if (!DetectedCpu().avx512_vnni) GTEST_SKIP() << "skipped: no AVX512-VNNI";
  const absl::Status s = QGemmPathSupported(QGemmPath::kAmx);
  EXPECT_TRUE(s.ok()) << s;
}
#endif

std::set<std::string> ProcCpuFlags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) {
      std::istringstream words(line.substr(line.find(':') + 1));
      std::set<std::string> flags;
      for (std::string w; words >> w;) flags.insert(w);
      return flags;
    }
  }
  return {};
}

TEST(QGemmTest, Int8FeatureDetectionAgreesWithTheKernel) {
  const std::set<std::string> flags = ProcCpuFlags();
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo";
  const CpuFeatures& f = DetectedCpu();
  EXPECT_EQ(f.avx512_vnni, flags.count("avx512_vnni") == 1);
  EXPECT_EQ(f.avx_vnni, flags.count("avx_vnni") == 1);
  EXPECT_EQ(f.amx_int8, flags.count("amx_int8") == 1);
}

}  // namespace
}  // namespace dive
