#include "tensor/pool.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "tensor/conv.h"  // ConvOutSize: the output size of any window
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tensor/testing.h"

namespace dive {
namespace {

// An input shape and a pooling window, the cases the pooling kernels are
// compared with the naive references on.
struct PoolCase {
  Shape x;
  Pool2dParams p;
};

// check(c, x, gen) for each case, traced with its input's shape: x is drawn
// from N(0, 1) by `gen`, a generator seeded `first_seed` for the first case,
// one more for each next one.
template <typename Check>
void ForEachCase(const std::vector<PoolCase>& cases, uint64_t first_seed,
                 Check check) {
  uint64_t seed = first_seed;
  for (const PoolCase& c : cases) {
    SCOPED_TRACE("x " + c.x.ToString());
    Generator gen(seed++);
    const Tensor x = gen.Normal(c.x, 0, 1);
    check(c, x, gen);
  }
}

// ---- Max pooling ------------------------------------------------------------

// Naive max pooling in double: values and the first argmax of each window
// (the last NaN's where there are NaNs).
void RefMaxPool(const Shape& s, const std::vector<double>& x,
                const Pool2dParams& p, std::vector<double>* y,
                std::vector<int64_t>* idx) {
  const int64_t oh = ConvOutSize(s[2], p.kernel_h, p.stride_h, p.pad_h);
  const int64_t ow = ConvOutSize(s[3], p.kernel_w, p.stride_w, p.pad_w);
  y->clear();
  idx->clear();
  for (int64_t q = 0; q < s[0] * s[1]; ++q)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        double best = -std::numeric_limits<double>::infinity();
        int64_t at = -1;
        for (int64_t a = 0; a < p.kernel_h; ++a)
          for (int64_t b = 0; b < p.kernel_w; ++b) {
            const int64_t ih = i * p.stride_h - p.pad_h + a;
            const int64_t iw = j * p.stride_w - p.pad_w + b;
            if (ih < 0 || ih >= s[2] || iw < 0 || iw >= s[3]) continue;
            const double v = x[(q * s[2] + ih) * s[3] + iw];
            // The first valid input, a larger one, or a NaN (the last NaN
            // wins, as in PyTorch).
            if (at < 0 || v > best || std::isnan(v)) {
              best = v;
              at = ih * s[3] + iw;
            }
          }
        y->push_back(best);
        idx->push_back(at);
      }
}

TEST(MaxPool2d, Values2x2Stride2) {
  const Tensor x = Tensor::FromVector(
      {1, 5, 2, 0, 3, 4, 8, 7, 9, 6, 1, 2, 0, 10, 3, 3}, {1, 1, 4, 4});
  Tensor argmax;
  const Tensor y = MaxPool2dForward(x, {2, 2, 2, 2}, &argmax);
  EXPECT_EQ(y.shape(), Shape({1, 1, 2, 2}));
  ExpectValues(y, {5, 8, 10, 3});
  ASSERT_EQ(argmax.dtype(), DType::kInt32);
  EXPECT_EQ(argmax.shape(), y.shape());
  // The last window ties (3 at 14 and 15): the first one wins.
  EXPECT_EQ(argmax.ToInt64Vector(), (std::vector<int64_t>{1, 6, 13, 14}));

  const Tensor dy = Tensor::FromVector({1, 2, 3, 4}, {1, 1, 2, 2});
  const Tensor dx = MaxPool2dBackward(dy, argmax, x.shape());
  EXPECT_EQ(dx.shape(), x.shape());
  ExpectValues(dx, {0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 3, 4, 0});
}

TEST(MaxPool2d, OverlappingWindowsAccumulate) {
  // 3x3 windows with stride 1 on 4x4: position (1, 2) is in all four.
  std::vector<float> v(16, 0.0f);
  for (int i = 0; i < 16; ++i) v[i] = 0.1f * i;
  v[1 * 4 + 2] = 100;
  const Tensor x = Tensor::FromVector(v, {1, 1, 4, 4});
  Tensor argmax;
  const Tensor y = MaxPool2dForward(x, {3, 3, 1, 1}, &argmax);
  ExpectValues(y, {100, 100, 100, 100});
  EXPECT_EQ(argmax.ToInt64Vector(), (std::vector<int64_t>{6, 6, 6, 6}));
  const Tensor dx = MaxPool2dBackward(
      Tensor::FromVector({1, 2, 3, 4}, {1, 1, 2, 2}), argmax, x.shape());
  std::vector<float> want(16, 0.0f);
  want[6] = 10;
  ExpectValues(dx, want);
}

TEST(MaxPool2d, PaddingIsMinusInfinity) {
  // All-negative input: zero padding would win; -inf padding never does.
  const Tensor x = Tensor::FromVector({-1, -2, -3, -4}, {1, 1, 2, 2});
  Tensor argmax;
  const Tensor y = MaxPool2dForward(x, {2, 2, 2, 2, 1, 1}, &argmax);
  EXPECT_EQ(y.shape(), Shape({1, 1, 2, 2}));
  ExpectValues(y, {-1, -2, -3, -4});
  EXPECT_EQ(argmax.ToInt64Vector(), (std::vector<int64_t>{0, 1, 2, 3}));

  // 3x3 windows, stride 1, padding 1 keep the size.
  const Tensor z =
      Tensor::FromVector({-9, -8, -7, -6, -5, -4, -3, -2, -1}, {1, 1, 3, 3});
  ExpectValues(MaxPool2dForward(z, {3, 3, 1, 1, 1, 1}, nullptr),
               {-5, -4, -4, -2, -1, -1, -2, -1, -1});
}

TEST(MaxPool2d, IndicesAlwaysValidEvenForMinusInfinity) {
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor x = Tensor::FromVector({-inf, -inf, -inf, -inf}, {1, 1, 2, 2});
  Tensor argmax;
  MaxPool2dForward(x, {2, 2, 1, 1, 1, 1}, &argmax);
  for (int64_t i : argmax.ToInt64Vector()) {
    EXPECT_GE(i, 0);
    EXPECT_LT(i, 4);
  }
}

TEST(MaxPool2d, NanPropagates) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor x = Tensor::FromVector({1, nan, 3, 4}, {1, 1, 2, 2});
  Tensor argmax;
  const Tensor y = MaxPool2dForward(x, {2, 2, 2, 2}, &argmax);
  EXPECT_TRUE(std::isnan(y.ToVector()[0]));
  EXPECT_EQ(argmax.ToInt64Vector()[0], 1);
}

TEST(MaxPool2d, MatchesNaiveReference) {
  const std::vector<PoolCase> cases = {
      {{2, 3, 8, 8}, {2, 2, 2, 2}},
      {{4, 6, 28, 28}, {2, 2, 2, 2}},  // parallel over planes
      {{2, 2, 7, 9}, {3, 3, 2, 2}},    // overlapping, odd sizes
      {{1, 3, 7, 7}, {3, 3, 2, 2, 1, 1}},
      {{3, 2, 5, 6}, {3, 2, 1, 2, 1, 1}},
      {{2, 1, 4, 4}, {4, 4, 4, 4}},  // global
      // Rows of several 16-output vectors: stride 1 (GoogLeNet's 3x3 pad 1
      // branch), 2 and 3.
      {{2, 3, 20, 37}, {3, 3, 1, 1, 1, 1}},
      {{1, 2, 21, 40}, {3, 3, 2, 2, 1, 1}},
      {{1, 2, 10, 50}, {3, 3, 3, 3}},
  };
  const auto check = [](const PoolCase& c, const Tensor& x, Generator& gen) {
    std::vector<double> want;
    std::vector<int64_t> want_idx;
    RefMaxPool(c.x, ToDouble(x), c.p, &want, &want_idx);
    Tensor argmax;
    const Tensor y = MaxPool2dForward(x, c.p, &argmax);
    ExpectClose(y, want, 0, 0);
    EXPECT_EQ(argmax.ToInt64Vector(), want_idx);

    // Backward: dx[q, argmax] += dy, and <dy, pool(x)> = <dx, x>.
    const Tensor dy = gen.Normal(y.shape(), 0, 1);
    const Tensor dx = MaxPool2dBackward(dy, argmax, c.x);
    const std::vector<double> dyd = ToDouble(dy);
    std::vector<double> ref(c.x.numel(), 0.0);
    const int64_t out_plane = y.dim(2) * y.dim(3), in_plane = c.x[2] * c.x[3];
    for (size_t k = 0; k < dyd.size(); ++k) {
      ref[(k / out_plane) * in_plane + want_idx[k]] += dyd[k];
    }
    ExpectClose(dx, ref, 1e-6, 1e-6);
    EXPECT_NEAR(Dot(dyd, ToDouble(y)), Dot(ToDouble(dx), ToDouble(x)), 1e-3);
  };
  ForEachCase(cases, 7, check);
}

// Inputs that exercise every rule of the max and its index: small integers
// (many ties), zeros of both signs, and planes holding NaNs (several, some
// in one window) or only -inf (the index of the first valid input).
Tensor TieHeavyInput(const Shape& s, Generator& gen) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const int64_t plane = s[2] * s[3];
  std::vector<float> v(s.numel());
  for (int64_t q = 0; q < s[0] * s[1]; ++q) {
    float* p = v.data() + q * plane;
    for (int64_t k = 0; k < plane; ++k) {
      const float r = std::round(gen.NextNormal(0, 1.5f));
      p[k] = r == 0 && gen.NextUniform(0, 1) < 0.5f ? -0.0f : r;
    }
    if (q % 4 == 1) {  // NaNs: one, and a few close together
      p[static_cast<int64_t>(gen.NextUniform(0, 1) * plane) % plane] = nan;
      const int64_t at =
          static_cast<int64_t>(gen.NextUniform(0, 1) * plane) % plane;
      for (int64_t k : {at, at + 1, at + s[3], at + s[3] + 2}) {
        if (k < plane) p[k] = nan;
      }
    } else if (q % 4 == 2) {
      for (int64_t k = 0; k < plane; ++k) p[k] = -inf;
    } else if (q % 4 == 3) {  // -inf among numbers
      for (int64_t k = 0; k < plane; k += 3) p[k] = -inf;
    }
  }
  return Tensor::FromVector(v, s);
}

// Every value equal to the reference's, bit for bit up to NaN payloads
// (the sign of zero included: the first maximum's).
void ExpectSameValues(const Tensor& y, const std::vector<double>& want) {
  const std::vector<float> got = y.ToVector();
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < got.size(); ++k) {
    if (std::isnan(want[k])) {
      EXPECT_TRUE(std::isnan(got[k])) << "at " << k;
    } else {
      EXPECT_EQ(got[k], want[k]) << "at " << k;
      EXPECT_EQ(std::signbit(got[k]), std::signbit(want[k])) << "at " << k;
    }
  }
}

// The vectorized paths (AVX-512: strides 1 and 2, widths 2 and 3 and any
// other, padding read as -inf, rows of several 16-output vectors and rows
// narrower than one) and the scalar one (stride 3, other ISAs) against the
// reference, with and without indices, on inputs full of ties and NaNs.
TEST(MaxPool2d, EveryWindowMatchesReferenceOnTiesAndNans) {
  uint64_t seed = 100;
  int cases = 0;
  for (int64_t k = 1; k <= 5; ++k) {
    for (int64_t stride = 1; stride <= 3; ++stride) {
      for (int64_t pad = 0; 2 * pad <= k; ++pad) {
        for (int64_t w : {1, 2, 3, 5, 8, 15, 16, 17, 31, 33, 34, 40, 67}) {
          if (w + 2 * pad < k) continue;
          // Heights: one output row (or the 1x1 map), and several.
          for (int64_t h : {std::max<int64_t>(k - 2 * pad, 1), int64_t{7}}) {
            if (h + 2 * pad < k) continue;
            const Shape s{1, 4, h, w};
            const Pool2dParams p{k, k, stride, stride, pad, pad};
            SCOPED_TRACE(::testing::Message()
                         << "x " << s << " kernel " << k << " stride " << stride
                         << " pad " << pad);
            Generator gen(seed++);
            const Tensor x = TieHeavyInput(s, gen);
            std::vector<double> want;
            std::vector<int64_t> want_idx;
            RefMaxPool(s, ToDouble(x), p, &want, &want_idx);
            Tensor argmax;
            ExpectSameValues(MaxPool2dForward(x, p, &argmax), want);
            EXPECT_EQ(argmax.ToInt64Vector(), want_idx);
            ExpectSameValues(MaxPool2dForward(x, p, nullptr), want);
            ++cases;
          }
        }
      }
    }
  }
  EXPECT_GT(cases, 300);
  // Rectangular windows with the two strides differing, and the widest
  // windows of the vector paths (48 columns at stride 1, 32 at stride 2)
  // and past them.
  const std::vector<PoolCase> wide = {
      {{1, 3, 6, 41}, {2, 3, 1, 2, 1, 1}}, {{1, 3, 9, 30}, {3, 2, 2, 1, 1, 1}},
      {{1, 2, 4, 60}, {2, 48, 1, 1}},      {{1, 2, 4, 60}, {2, 49, 1, 1}},
      {{1, 2, 3, 70}, {1, 32, 1, 2}},      {{1, 2, 3, 70}, {1, 33, 1, 2}},
  };
  for (const PoolCase& c : wide) {
    SCOPED_TRACE("x " + c.x.ToString());
    Generator gen(seed++);
    const Tensor x = TieHeavyInput(c.x, gen);
    std::vector<double> want;
    std::vector<int64_t> want_idx;
    RefMaxPool(c.x, ToDouble(x), c.p, &want, &want_idx);
    Tensor argmax;
    ExpectSameValues(MaxPool2dForward(x, c.p, &argmax), want);
    EXPECT_EQ(argmax.ToInt64Vector(), want_idx);
    ExpectSameValues(MaxPool2dForward(x, c.p, nullptr), want);
  }
}

TEST(MaxPool2d, OneByOneMap) {
  const Tensor x = Tensor::FromVector({-3, 7}, {1, 2, 1, 1});
  Tensor argmax;
  ExpectValues(MaxPool2dForward(x, {1, 1, 1, 1}, &argmax), {-3, 7});
  EXPECT_EQ(argmax.ToInt64Vector(), (std::vector<int64_t>{0, 0}));
  // 2x2 windows with padding 1: four windows, each the one element.
  const Tensor y = MaxPool2dForward(x, {2, 2, 1, 1, 1, 1}, &argmax);
  EXPECT_EQ(y.shape(), Shape({1, 2, 2, 2}));
  ExpectValues(y, {-3, -3, -3, -3, 7, 7, 7, 7});
  EXPECT_EQ(argmax.ToInt64Vector(), std::vector<int64_t>(8, 0));
  const Tensor dx =
      MaxPool2dBackward(Tensor::Ones(y.shape()), argmax, x.shape());
  ExpectValues(dx, {4, 4});
}

TEST(MaxPool2dDeathTest, BadParams) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const Tensor x = Tensor::Zeros({1, 1, 4, 4});
  EXPECT_DEATH(MaxPool2dForward(x, {2, 2, 2, 2, 2, 0}, nullptr),
               "MaxPool2dForward: padding must be at most half the kernel");
  EXPECT_DEATH(MaxPool2dForward(x, {5, 5, 1, 1}, nullptr),
               "MaxPool2dForward: input height 4 with padding 0 is smaller "
               "than the kernel height 5");
  // bf16 results only of bf16 inputs (where they are exact).
  EXPECT_DEATH(MaxPool2dForward(x, {2, 2, 2, 2}, nullptr, DType::kBfloat16),
               "MaxPool2dForward: a bfloat16 result of a float32 input");
  EXPECT_DEATH(MaxPool2dForward(x.To(DType::kBfloat16), {2, 2, 2, 2}, nullptr,
                                DType::kInt32),
               "MaxPool2dForward: a int32 result of a bfloat16 input");
  Tensor argmax;
  MaxPool2dForward(x, {2, 2, 2, 2}, &argmax);
  EXPECT_DEATH(
      MaxPool2dBackward(Tensor::Zeros({1, 1, 3, 2}), argmax, x.shape()),
      "MaxPool2dBackward: argmax has shape \\[1, 1, 2, 2\\] but dy "
      "has shape \\[1, 1, 3, 2\\]");
}

// ---- Average pooling --------------------------------------------------------

TEST(AvgPool2d, Values2x2Stride2) {
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = i + 1;
  const Tensor y =
      AvgPool2dForward(Tensor::FromVector(v, {1, 1, 4, 4}), {2, 2, 2, 2});
  EXPECT_EQ(y.shape(), Shape({1, 1, 2, 2}));
  ExpectValues(y, {3.5f, 5.5f, 11.5f, 13.5f});
}

TEST(AvgPool2d, CountIncludePadAtBorders) {
  // Each padded 2x2 window holds one element: divided by 4, not by 1.
  const Tensor x = Tensor::FromVector({1, 2, 3, 4}, {1, 1, 2, 2});
  ExpectValues(AvgPool2dForward(x, {2, 2, 2, 2, 1, 1}),
               {0.25f, 0.5f, 0.75f, 1.0f});
  // 3x3 windows with padding 1 on ones: corners 4/9, edges 6/9, center 1.
  const Tensor ones = Tensor::Ones({1, 1, 3, 3});
  const float c = 4.0f / 9, e = 6.0f / 9;
  ExpectValues(AvgPool2dForward(ones, {3, 3, 1, 1, 1, 1}),
               {c, e, c, e, 1, e, c, e, c});
}

TEST(AvgPool2d, Backward) {
  // Each input gets 1/9 from every window that contains it.
  const Tensor dx = AvgPool2dBackward(Tensor::Ones({1, 1, 3, 3}), {1, 1, 3, 3},
                                      {3, 3, 1, 1, 1, 1});
  const float c = 4.0f / 9, e = 6.0f / 9;
  ExpectValues(dx, {c, e, c, e, 1, e, c, e, c});
  // Non-overlapping 2x2 windows: dy / 4 copied over each window.
  const Tensor dx2 =
      AvgPool2dBackward(Tensor::FromVector({4, 8, 12, 16}, {1, 1, 2, 2}),
                        {1, 1, 4, 4}, {2, 2, 2, 2});
  ExpectValues(dx2, {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
}

TEST(AvgPool2d, MatchesNaiveReferenceAndAdjoint) {
  const std::vector<PoolCase> cases = {
      {{2, 3, 8, 8}, {2, 2, 2, 2}},
      {{4, 6, 28, 28}, {2, 2, 2, 2}},
      {{2, 2, 7, 9}, {3, 3, 2, 2, 1, 1}},
      {{3, 2, 5, 6}, {3, 2, 1, 2, 1, 1}},
      {{2, 4, 7, 7}, {7, 7, 1, 1}},
      // Tiling windows (kernel == stride, no padding) past which the last
      // row and column are left out.
      {{2, 3, 7, 9}, {2, 2, 2, 2}},
      {{1, 2, 10, 8}, {3, 3, 3, 3}},
  };
  const auto check = [](const PoolCase& c, const Tensor& x, Generator& gen) {
    const Pool2dParams& p = c.p;
    const int64_t oh = ConvOutSize(c.x[2], p.kernel_h, p.stride_h, p.pad_h);
    const int64_t ow = ConvOutSize(c.x[3], p.kernel_w, p.stride_w, p.pad_w);
    const std::vector<double> xd = ToDouble(x);
    std::vector<double> want;
    for (int64_t q = 0; q < c.x[0] * c.x[1]; ++q)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double s = 0.0;
          for (int64_t a = 0; a < p.kernel_h; ++a)
            for (int64_t b = 0; b < p.kernel_w; ++b) {
              const int64_t ih = i * p.stride_h - p.pad_h + a;
              const int64_t iw = j * p.stride_w - p.pad_w + b;
              if (ih < 0 || ih >= c.x[2] || iw < 0 || iw >= c.x[3]) continue;
              s += xd[(q * c.x[2] + ih) * c.x[3] + iw];
            }
          want.push_back(s / (p.kernel_h * p.kernel_w));
        }
    const Tensor y = AvgPool2dForward(x, p);
    ASSERT_EQ(y.shape(), Shape({c.x[0], c.x[1], oh, ow}));
    ExpectClose(y, want, 1e-5, 1e-5);
    // The backward is the adjoint of the (linear) forward.
    const Tensor dy = gen.Normal(y.shape(), 0, 1);
    const Tensor dx = AvgPool2dBackward(dy, c.x, p);
    ASSERT_EQ(dx.shape(), c.x);
    EXPECT_NEAR(Dot(ToDouble(dy), ToDouble(y)), Dot(ToDouble(dx), xd), 1e-3);
  };
  ForEachCase(cases, 70, check);
}

// ---- bf16 inputs ------------------------------------------------------------

// A bf16 x pools to exactly what its float32 widening pools to, max (with
// the same argmax) and average, on every kernel path: small planes many to
// a buffer, planes larger than the buffer one at a time, padding, strides
// 1 to 3 and a plane count that leaves a partial last chunk.
TEST(PoolBf16, SameAsTheWidenedFloat32Input) {
  const std::vector<PoolCase> cases = {
      {{4, 50, 12, 12}, {3, 3, 1, 1, 1, 1}},  // GoogLeNet's branch pooling
      {{3, 7, 9, 9}, {3, 3, 2, 2, 1, 1}},     // its stage pooling
      {{2, 3, 8, 8}, {2, 2, 2, 2}},           // LeNet's, tiled averages
      {{1, 3, 140, 130}, {3, 3, 3, 3}},       // planes over the buffer
      {{37, 11, 5, 5}, {5, 5, 5, 5}},         // a global average
  };
  ForEachCase(cases, 500, [](const PoolCase& c, const Tensor& x, Generator&) {
    const Tensor b = x.To(DType::kBfloat16);
    const Tensor wide = b.To(DType::kFloat32);
    Tensor idx_b, idx_f;
    const Tensor max_b = MaxPool2dForward(b, c.p, &idx_b);
    ASSERT_EQ(max_b.dtype(), DType::kFloat32);
    EXPECT_EQ(max_b.ToVector(), MaxPool2dForward(wide, c.p, &idx_f).ToVector());
    EXPECT_EQ(idx_b.ToInt64Vector(), idx_f.ToInt64Vector());
    EXPECT_EQ(MaxPool2dForward(b, c.p, nullptr).ToVector(), max_b.ToVector());
    EXPECT_EQ(AvgPool2dForward(b, c.p).ToVector(),
              AvgPool2dForward(wide, c.p).ToVector());
  });
}

TEST(AvgPool2dDeathTest, BadShapes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      AvgPool2dForward(Tensor::Zeros({1, 1, 4, 4}), {3, 3, 1, 1, 2, 2}),
      "AvgPool2dForward: padding must be at most half the kernel");
  EXPECT_DEATH(AvgPool2dBackward(Tensor::Zeros({1, 1, 3, 3}), {1, 1, 4, 4},
                                 {2, 2, 2, 2}),
               "AvgPool2dBackward: dy has shape \\[1, 1, 3, 3\\] but pooling x "
               "\\[1, 1, 4, 4\\] gives \\[1, 1, 2, 2\\]");
}

}  // namespace
}  // namespace dive
