// Tests of QConv2d on oneDNN (tensor/qconv_onednn.h): against an exact
// reference (int64 sums, the requantization in double) and against dive's
// own kernels, byte for byte, on zoo layer shapes; and which shapes take it.
// On CPUs without AVX512-VNNI every test reports itself skipped.

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "glog/logging.h"
#include "gtest/gtest.h"
#include "tensor/qconv.h"
#include "tensor/qgemm.h"
#include "tensor/testing.h"

namespace dive {
namespace {

class QConvOneDnnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (absl::Status s = QGemmPathSupported(QGemmPath::kAvx512Vnni); !s.ok()) {
      GTEST_SKIP() << "skipped: oneDNN's int8 convolution runs only on "
                      "AVX512-VNNI, and this CPU lacks it ("
                   << s.message() << ")";
    }
  }
};

struct Case {
  const char* name;
  int64_t n, c, h, w, oc, kh, kw, sh, sw, ph, pw;
};

template <typename T>
std::vector<T> RandomInts(size_t size, int lo, int hi, std::mt19937* rng) {
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<T> v(size);
  for (T& x : v) x = static_cast<T>(dist(*rng));
  return v;
}

// acc [n, oc, oh, ow] = the exact sums of (x - za) * w, x read as za
// outside the image, in int64.
std::vector<int64_t> RefConv(const Case& s, int64_t oh, int64_t ow,
                             const std::vector<uint8_t>& x, int za,
                             const std::vector<int8_t>& w) {
  std::vector<int64_t> acc(s.n * s.oc * oh * ow, 0);
  for (int64_t n = 0; n < s.n; ++n) {
    for (int64_t o = 0; o < s.oc; ++o) {
      for (int64_t i = 0; i < oh; ++i) {
        for (int64_t j = 0; j < ow; ++j) {
          int64_t sum = 0;
          for (int64_t c = 0; c < s.c; ++c) {
            for (int64_t a = 0; a < s.kh; ++a) {
              const int64_t ii = i * s.sh - s.ph + a;
              if (ii < 0 || ii >= s.h) continue;
              for (int64_t b = 0; b < s.kw; ++b) {
                const int64_t jj = j * s.sw - s.pw + b;
                if (jj < 0 || jj >= s.w) continue;
                sum += (static_cast<int64_t>(
                            x[((n * s.c + c) * s.h + ii) * s.w + jj]) -
                        za) *
                       w[((o * s.c + c) * s.kh + a) * s.kw + b];
              }
            }
          }
          acc[((n * s.oc + o) * oh + i) * ow + j] = sum;
        }
      }
    }
  }
  return acc;
}

// QConv2d's output (bytes) with `library`.
std::vector<uint8_t> RunConv(QConvLibrary library, const Case& s,
                             const std::vector<uint8_t>& x, int za,
                             const QPackedWeights& w, const QRequantization& rq,
                             int64_t size) {
  const ScopedQConvLibrary scope(library);
  EXPECT_EQ(QConv2dUsesOneDnn(w), library == QConvLibrary::kOneDnn);
  QConv2dParams p;
  p.stride_h = s.sh;
  p.stride_w = s.sw;
  p.pad_h = s.ph;
  p.pad_w = s.pw;
  std::vector<uint8_t> y(size * (rq.output == QOutputType::kUint8 ? 1 : 4));
  const absl::Status st =
      QConv2d(s.n, s.h, s.w, x.data(), za, w, p, rq, y.data());
  EXPECT_TRUE(st.ok()) << st;
  return y;
}

// Zoo layers at small batches, and the edges: stride 2, padding, odd sizes
// and channel counts (tiles of 16 channels and 16 pixels cut), batch 1,
// batches cut into chunks with a shorter last one, a 1x1 kernel.
TEST_F(QConvOneDnnTest, MatchesDiveAndTheExactReference) {
  const Case cases[] = {
      {"alexnet conv2 5x5 96->256", 2, 96, 10, 10, 256, 5, 5, 1, 1, 2, 2},
      {"vgg 3x3 16->32", 1, 16, 48, 48, 32, 3, 3, 1, 1, 1, 1},
      {"resnet 3x3 64, 7 images in chunks", 7, 64, 24, 24, 64, 3, 3, 1, 1, 1,
       1},
      {"resnet 3x3 128", 2, 128, 12, 12, 128, 3, 3, 1, 1, 1, 1},
      {"resnet 3x3 512 at 3x3", 3, 512, 3, 3, 512, 3, 3, 1, 1, 1, 1},
      {"resnet 3x3 stride 2, 64->128", 2, 64, 12, 12, 128, 3, 3, 2, 2, 1, 1},
      {"odd: 17->33, 7x9, 3x5 kernel", 3, 17, 7, 9, 33, 3, 5, 1, 2, 2, 1},
      {"no padding, stride 2, 5x5", 1, 20, 11, 13, 24, 5, 5, 2, 2, 0, 0},
      {"googlenet 1x1 192->64", 2, 192, 12, 12, 64, 1, 1, 1, 1, 0, 0},
  };
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> unit(0.5f, 1.5f);
  for (const Case& s : cases) {
    SCOPED_TRACE(s.name);
    const int64_t oh = (s.h + 2 * s.ph - s.kh) / s.sh + 1;
    const int64_t ow = (s.w + 2 * s.pw - s.kw) / s.sw + 1;
    const int64_t k = s.c * s.kh * s.kw, plane = oh * ow;
    const int64_t size = s.n * s.oc * plane;
    const auto x = RandomInts<uint8_t>(s.n * s.c * s.h * s.w, 0, 255, &rng);
    const auto w = RandomInts<int8_t>(s.oc * k, -128, 127, &rng);
    const auto bias = RandomInts<int32_t>(s.oc, -50000, 50000, &rng);
    std::vector<float> scale(s.oc);
    for (float& v : scale) v = unit(rng) * 100.0f / (7400.0f * std::sqrt(k));
    absl::StatusOr<QPackedWeights> packed = PackQConv2dWeights(
        QGemmPath::kAvx512Vnni, s.oc, s.c, s.kh, s.kw, w.data());
    ASSERT_TRUE(packed.ok()) << packed.status();
    for (int za : {0, 131, 255}) {
      const std::vector<int64_t> acc = RefConv(s, oh, ow, x, za, w);
      QRequantization rq;
      rq.bias = bias.data();
      rq.output = QOutputType::kInt32;
      std::vector<uint8_t> got =
          RunConv(QConvLibrary::kOneDnn, s, x, za, *packed, rq, size);
      for (int64_t i = 0; i < size; ++i) {
        int32_t v;
        std::memcpy(&v, got.data() + 4 * i, 4);
        ASSERT_EQ(v, acc[i] + bias[i / plane % s.oc])
            << "int32, za " << za << " at " << i;
      }
      EXPECT_EQ(got, RunConv(QConvLibrary::kDive, s, x, za, *packed, rq, size))
          << "int32, za " << za;
      rq.scale = scale.data();
      for (bool relu : {false, true}) {
        rq.relu = relu;
        rq.output = QOutputType::kFloat;
        rq.zero_point = 0;
        got = RunConv(QConvLibrary::kOneDnn, s, x, za, *packed, rq, size);
        for (int64_t i = 0; i < size; ++i) {
          const int64_t o = i / plane % s.oc;
          float v;
          std::memcpy(&v, got.data() + 4 * i, 4);
          ASSERT_EQ(v, RefFloat(acc[i] + bias[o], scale[o], relu))
              << "float, za " << za << " relu " << relu << " at " << i;
        }
        EXPECT_EQ(got,
                  RunConv(QConvLibrary::kDive, s, x, za, *packed, rq, size))
            << "float, za " << za << " relu " << relu;
        rq.output = QOutputType::kUint8;
        for (int zo : {0, 3, 128, 255}) {
          rq.zero_point = zo;
          got = RunConv(QConvLibrary::kOneDnn, s, x, za, *packed, rq, size);
          for (int64_t i = 0; i < size; ++i) {
            const int64_t o = i / plane % s.oc;
            ASSERT_EQ(got[i], RefUint8(acc[i] + bias[o], scale[o], zo, relu))
                << "uint8, za " << za << " zo " << zo << " relu " << relu
                << " at " << i;
          }
          EXPECT_EQ(got,
                    RunConv(QConvLibrary::kDive, s, x, za, *packed, rq, size))
              << "uint8, za " << za << " zo " << zo << " relu " << relu;
        }
      }
    }
  }
}

// Sums far beyond float32's 2^24 (oneDNN's own zero-point and scale
// handling would round them): 4608 products of 255 and -128, 1.5e8.
TEST_F(QConvOneDnnTest, LargeSumsAreExact) {
  const Case s = {"512 channels 3x3", 2, 512, 5, 5, 16, 3, 3, 1, 1, 0, 0};
  const int64_t k = s.c * 9, size = s.n * s.oc * 9;
  std::vector<uint8_t> x(s.n * s.c * s.h * s.w, 255);
  std::vector<int8_t> w(s.oc * k, -128);
  x[7] = 254;  // not all sums alike
  w[k + 3] = 127;
  absl::StatusOr<QPackedWeights> packed = PackQConv2dWeights(
      QGemmPath::kAvx512Vnni, s.oc, s.c, s.kh, s.kw, w.data());
  ASSERT_TRUE(packed.ok()) << packed.status();
  const std::vector<int64_t> acc = RefConv(s, 3, 3, x, 0, w);
  QRequantization rq;
  rq.output = QOutputType::kInt32;
  const std::vector<uint8_t> got =
      RunConv(QConvLibrary::kOneDnn, s, x, 0, *packed, rq, size);
  for (int64_t i = 0; i < size; ++i) {
    int32_t v;
    std::memcpy(&v, got.data() + 4 * i, 4);
    ASSERT_EQ(v, acc[i]) << "at " << i;
  }
  EXPECT_LT(acc[0], -(int64_t{1} << 27));
}

// Two threads and one give the same bytes; a second call (the cached plan)
// the same as the first.
TEST_F(QConvOneDnnTest, ThreadsAndTheCachedPlanGiveTheSameBytes) {
  const Case s = {"resnet 3x3 64", 5, 64, 24, 24, 64, 3, 3, 1, 1, 1, 1};
  std::mt19937 rng(3);
  const auto x = RandomInts<uint8_t>(s.n * s.c * s.h * s.w, 0, 255, &rng);
  const auto w = RandomInts<int8_t>(s.oc * s.c * 9, -128, 127, &rng);
  const std::vector<float> scale(s.oc, 1e-3f);
  absl::StatusOr<QPackedWeights> packed = PackQConv2dWeights(
      QGemmPath::kAvx512Vnni, s.oc, s.c, s.kh, s.kw, w.data());
  ASSERT_TRUE(packed.ok()) << packed.status();
  QRequantization rq;
  rq.scale = scale.data();
  rq.zero_point = 5;
  rq.relu = true;
  const int64_t size = s.n * s.oc * s.h * s.w;
  const std::vector<uint8_t> first =
      RunConv(QConvLibrary::kOneDnn, s, x, 100, *packed, rq, size);
  omp_set_num_threads(1);
  EXPECT_EQ(RunConv(QConvLibrary::kOneDnn, s, x, 100, *packed, rq, size),
            first);
  omp_set_num_threads(omp_get_num_procs());
  EXPECT_EQ(RunConv(QConvLibrary::kOneDnn, s, x, 100, *packed, rq, size),
            first);
  EXPECT_EQ(RunConv(QConvLibrary::kDive, s, x, 100, *packed, rq, size), first);
}

// kAuto: KxK kernels with c * kh * kw >= 1024, on weights packed for
// avx512_vnni only; kDive never, kOneDnn always (there).
TEST_F(QConvOneDnnTest, TakesKxKKernelsWithEnoughChannels) {
  const auto packed = [](QGemmPath path, int64_t c, int64_t kh, int64_t kw) {
    const std::vector<int8_t> w(8 * c * kh * kw, 1);
    absl::StatusOr<QPackedWeights> p =
        PackQConv2dWeights(path, 8, c, kh, kw, w.data());
    CHECK(p.ok()) << p.status();
    return *p;
  };
  const QPackedWeights k3c16 = packed(QGemmPath::kAvx512Vnni, 16, 3, 3);
  const QPackedWeights k3c64 = packed(QGemmPath::kAvx512Vnni, 64, 3, 3);
  const QPackedWeights k3c128 = packed(QGemmPath::kAvx512Vnni, 128, 3, 3);
  const QPackedWeights k5c96 = packed(QGemmPath::kAvx512Vnni, 96, 5, 5);
  const QPackedWeights k3c8 = packed(QGemmPath::kAvx512Vnni, 8, 3, 3);
  const QPackedWeights k1c192 = packed(QGemmPath::kAvx512Vnni, 192, 1, 1);
  const QPackedWeights generic = packed(QGemmPath::kGeneric, 64, 3, 3);
  {
    const ScopedQConvLibrary scope(QConvLibrary::kAuto);
    EXPECT_FALSE(QConv2dUsesOneDnn(k3c16));  // VGG's 16->32: k = 144
    EXPECT_FALSE(QConv2dUsesOneDnn(k3c64));  // k = 576: a tie
    EXPECT_TRUE(QConv2dUsesOneDnn(k3c128));
    EXPECT_TRUE(QConv2dUsesOneDnn(k5c96));
    EXPECT_FALSE(QConv2dUsesOneDnn(k3c8));
    EXPECT_FALSE(QConv2dUsesOneDnn(k1c192));
    EXPECT_FALSE(QConv2dUsesOneDnn(generic));
  }
  {
    const ScopedQConvLibrary scope(QConvLibrary::kDive);
    EXPECT_FALSE(QConv2dUsesOneDnn(k3c128));
    EXPECT_FALSE(QConv2dUsesOneDnn(k5c96));
  }
  {
    const ScopedQConvLibrary scope(QConvLibrary::kOneDnn);
    EXPECT_TRUE(QConv2dUsesOneDnn(k3c8));
    EXPECT_TRUE(QConv2dUsesOneDnn(k3c16));
    EXPECT_TRUE(QConv2dUsesOneDnn(k1c192));
    EXPECT_FALSE(QConv2dUsesOneDnn(generic));
  }
}

}  // namespace
}  // namespace dive
