#include "tensor/conv.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tensor/bf16.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tensor/testing.h"

namespace dive {
namespace {

// One convolution configuration.
struct ConvCase {
  int64_t n, c, h, w, oc, kh, kw, sh, sw, ph, pw;
  bool bias;

  Conv2dParams params() const {
    Conv2dParams p;
    p.stride_h = sh;
    p.stride_w = sw;
    p.pad_h = ph;
    p.pad_w = pw;
    return p;
  }
  int64_t oh() const { return (h + 2 * ph - kh) / sh + 1; }
  int64_t ow() const { return (w + 2 * pw - kw) / sw + 1; }
  Shape x_shape() const { return {n, c, h, w}; }
  Shape w_shape() const { return {oc, c, kh, kw}; }
  Shape y_shape() const { return {n, oc, oh(), ow()}; }
  std::string ToString() const {
    return "x " + x_shape().ToString() + " w " + w_shape().ToString() +
           " stride " + std::to_string(sh) + "x" + std::to_string(sw) +
           " pad " + std::to_string(ph) + "x" + std::to_string(pw);
  }
};

// The naive convolution's 7 loops: f(yi, xi, wi) for every output yi =
// (n, o, i, j) and every tap (c, a, b) of its window that lies inside the
// input, xi = (n, c, ih, iw) and wi = (o, c, a, b), in that order.
template <typename F>
void ForEachTap(const ConvCase& k, F f) {
  const int64_t oh = k.oh(), ow = k.ow();
  for (int64_t n = 0; n < k.n; ++n)
    for (int64_t o = 0; o < k.oc; ++o)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          const int64_t yi = ((n * k.oc + o) * oh + i) * ow + j;
          for (int64_t c = 0; c < k.c; ++c)
            for (int64_t a = 0; a < k.kh; ++a)
              for (int64_t b = 0; b < k.kw; ++b) {
                const int64_t ih = i * k.sh - k.ph + a;
                const int64_t iw = j * k.sw - k.pw + b;
                if (ih < 0 || ih >= k.h || iw < 0 || iw >= k.w) continue;
                f(yi, ((n * k.c + c) * k.h + ih) * k.w + iw,
                  ((o * k.c + c) * k.kh + a) * k.kw + b);
              }
        }
}

// The output channel of output yi.
int64_t OutChannel(const ConvCase& k, int64_t yi) {
  return yi / (k.oh() * k.ow()) % k.oc;
}

// The naive convolution in double. `bias` may be empty.
std::vector<double> RefConv(const ConvCase& k, const std::vector<double>& x,
                            const std::vector<double>& w,
                            const std::vector<double>& bias) {
  std::vector<double> y(k.n * k.oc * k.oh() * k.ow(), 0.0);
  if (!bias.empty()) {
    for (size_t yi = 0; yi < y.size(); ++yi) y[yi] = bias[OutChannel(k, yi)];
  }
  ForEachTap(k, [&](int64_t yi, int64_t xi, int64_t wi) {
    y[yi] += w[wi] * x[xi];
  });
  return y;
}

// Naive gradients of RefConv: dx and dw by scattering dy through the same
// loops, db by summing.
void RefConvBackward(const ConvCase& k, const std::vector<double>& x,
                     const std::vector<double>& w,
                     const std::vector<double>& dy, std::vector<double>* dx,
                     std::vector<double>* dw, std::vector<double>* db) {
  dx->assign(x.size(), 0.0);
  dw->assign(w.size(), 0.0);
  db->assign(k.oc, 0.0);
  for (size_t yi = 0; yi < dy.size(); ++yi) (*db)[OutChannel(k, yi)] += dy[yi];
  ForEachTap(k, [&](int64_t yi, int64_t xi, int64_t wi) {
    (*dx)[xi] += dy[yi] * w[wi];
    (*dw)[wi] += dy[yi] * x[xi];
  });
}

const std::vector<ConvCase>& Cases() {
  static const std::vector<ConvCase> cases = {
      // n  c   h   w  oc kh kw sh sw ph pw bias
      {2, 3, 8, 8, 4, 3, 3, 1, 1, 0, 0, true},
      {1, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, false},    // one image: serial path
      {3, 2, 7, 9, 5, 3, 2, 2, 1, 1, 0, true},     // rectangular, mixed
      {4, 1, 28, 28, 6, 5, 5, 1, 1, 2, 2, true},   // LeNet conv1
      {5, 6, 14, 14, 16, 5, 5, 1, 1, 0, 0, true},  // LeNet conv2
      {2, 4, 6, 6, 3, 1, 1, 1, 1, 0, 0, true},     // 1x1: plain GEMM
      {7, 5, 3, 4, 2, 1, 1, 1, 1, 0, 0, false},    // 1x1, odd batch
      {3, 4, 7, 7, 5, 1, 1, 2, 2, 0, 0, true},     // 1x1 strided
      {2, 3, 5, 5, 2, 1, 1, 1, 1, 1, 1, true},     // 1x1 padded
      {1, 2, 9, 9, 3, 3, 3, 3, 2, 1, 2, true},     // strides 3x2, pads 1x2
      {2, 3, 4, 4, 2, 4, 4, 1, 1, 0, 0, true},     // kernel covers the input
      {9, 2, 5, 5, 3, 3, 3, 1, 1, 1, 1, true},     // same padding
      {3, 2, 6, 5, 4, 5, 3, 1, 2, 2, 1, false},    // wide padding
      {2, 2, 2, 2, 3, 3, 3, 2, 2, 1, 1, true},     // padded tiny input
  };
  return cases;
}

// ---- ConvOutSize ------------------------------------------------------------

TEST(Conv2d, OutSize) {
  EXPECT_EQ(ConvOutSize(28, 5, 1, 0), 24);
  EXPECT_EQ(ConvOutSize(28, 5, 1, 2), 28);
  EXPECT_EQ(ConvOutSize(7, 3, 2, 1), 4);
  EXPECT_EQ(ConvOutSize(4, 2, 2, 0), 2);
  EXPECT_EQ(ConvOutSize(5, 2, 2, 0), 2);  // rounds down
  EXPECT_EQ(ConvOutSize(3, 3, 1, 0), 1);
  EXPECT_EQ(ConvOutSize(1, 3, 1, 1), 1);
  EXPECT_EQ(ConvOutSize(224, 11, 4, 2), 55);
}

// ---- Forward, by hand -------------------------------------------------------

TEST(Conv2d, SingleChannel3x3With2x2Kernel) {
  const Tensor x =
      Tensor::FromVector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  const Tensor w = Tensor::FromVector({1, 2, 3, 4}, {1, 1, 2, 2});
  const Tensor y = Conv2dForward(x, w, Tensor(), Conv2dParams());
  EXPECT_EQ(y.shape(), Shape({1, 1, 2, 2}));
  ExpectValues(y, {37, 47, 67, 77});
}

TEST(Conv2d, Bias) {
  const Tensor x =
      Tensor::FromVector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  const Tensor w = Tensor::FromVector({1, 2, 3, 4}, {1, 1, 2, 2});
  const Tensor b = Tensor::FromVector({0.5f}, {1});
  ExpectValues(Conv2dForward(x, w, b, Conv2dParams()),
               {37.5f, 47.5f, 67.5f, 77.5f});
}

TEST(Conv2d, Padding) {
  const Tensor x =
      Tensor::FromVector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  const Tensor w = Tensor::FromVector({1, 2, 3, 4}, {1, 1, 2, 2});
  Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  const Tensor y = Conv2dForward(x, w, Tensor(), p);
  EXPECT_EQ(y.shape(), Shape({1, 1, 4, 4}));
  ExpectValues(y, {4, 11, 18, 9,    //
                   18, 37, 47, 21,  //
                   36, 67, 77, 33,  //
                   14, 23, 26, 9});
}

TEST(Conv2d, Stride2) {
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = i + 1;
  const Tensor x = Tensor::FromVector(v, {1, 1, 4, 4});
  const Tensor w = Tensor::Ones({1, 1, 2, 2});
  Conv2dParams p;
  p.stride_h = p.stride_w = 2;
  const Tensor y = Conv2dForward(x, w, Tensor(), p);
  EXPECT_EQ(y.shape(), Shape({1, 1, 2, 2}));
  ExpectValues(y, {14, 22, 46, 54});
}

TEST(Conv2d, MultiChannelInAndOut) {
  // Channel 0 is 1..4, channel 1 is 5..8.
  const Tensor x = Tensor::FromVector({1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 2, 2});
  // Output 0: ones on channel 0, twos on channel 1. Output 1: +1 and -1.
  const Tensor w = Tensor::FromVector(
      {1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, -1, -1, -1, -1}, {2, 2, 2, 2});
  const Tensor y = Conv2dForward(x, w, Tensor(), Conv2dParams());
  EXPECT_EQ(y.shape(), Shape({1, 2, 1, 1}));
  ExpectValues(y, {10 + 2 * 26, 10 - 26});
}

TEST(Conv2d, OneByOneIsAMatrixProduct) {
  // Two images: x and -x.
  const Tensor x = Tensor::FromVector(
      {1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4, -5, -6, -7, -8}, {2, 2, 2, 2});
  const Tensor w = Tensor::FromVector({1, 0, 0, 1, 1, -1}, {3, 2, 1, 1});
  const Tensor b = Tensor::FromVector({10, 20, 30}, {3});
  const Tensor y = Conv2dForward(x, w, b, Conv2dParams());
  EXPECT_EQ(y.shape(), Shape({2, 3, 2, 2}));
  ExpectValues(y, {11, 12, 13, 14, 25, 26, 27, 28, 26, 26, 26, 26,  //
                   9,  8,  7,  6,  15, 14, 13, 12, 34, 34, 34, 34});
}

// ---- Forward and backward against the naive reference ----------------------

// With `precision` kBfloat16 the convolutions multiply bf16 operands: the
// reference takes x, w and dy rounded to bf16 (the bias is added in float32).
void CheckAgainstReference(
    const ConvCase& k, uint64_t seed,
    MatmulPrecision precision = MatmulPrecision::kFloat32) {
  const bool bf16 = precision == MatmulPrecision::kBfloat16;
  SCOPED_TRACE(k.ToString() + " threads " + std::to_string(GetNumThreads()) +
               (bf16 ? " bf16" : ""));
  const ScopedMatmulPrecision scope(precision);
  Generator gen(seed);
  const Tensor x = gen.Normal(k.x_shape(), 0, 1);
  const Tensor w = gen.Normal(k.w_shape(), 0, 1);
  const Tensor b = k.bias ? gen.Normal({k.oc}, 0, 1) : Tensor();
  const Tensor dy = gen.Normal(k.y_shape(), 0, 1);
  auto operand = [bf16](const Tensor& t) {
    std::vector<double> v = ToDouble(t);
    if (bf16) {
      for (double& e : v) e = RoundToBf16(static_cast<float>(e));
    }
    return v;
  };
  const std::vector<double> xd = operand(x), wd = operand(w),
                            dyd = operand(dy);
  const std::vector<double> bd = k.bias ? ToDouble(b) : std::vector<double>();

  const Tensor y = Conv2dForward(x, w, b, k.params());
  ASSERT_EQ(y.shape(), k.y_shape());
  ExpectClose(y, RefConv(k, xd, wd, bd), 1e-4, 1e-4, "forward");

  std::vector<double> dx, dw, db;
  RefConvBackward(k, xd, wd, dyd, &dx, &dw, &db);
  if (bf16) {  // the bias gradient sums dy as it is
    std::vector<double> unused_dx, unused_dw;
    RefConvBackward(k, ToDouble(x), ToDouble(w), ToDouble(dy), &unused_dx,
                    &unused_dw, &db);
  }
  const Tensor gx = Conv2dBackwardInput(dy, w, k.x_shape(), k.params());
  ASSERT_EQ(gx.shape(), k.x_shape());
  ExpectClose(gx, dx, 1e-4, 1e-4, "backward input");
  const Tensor gw = Conv2dBackwardWeight(dy, x, k.w_shape(), k.params());
  ASSERT_EQ(gw.shape(), k.w_shape());
  ExpectClose(gw, dw, 1e-3, 1e-4, "backward weight");
  const Tensor gb = Conv2dBackwardBias(dy);
  ASSERT_EQ(gb.shape(), Shape({k.oc}));
  ExpectClose(gb, db, 1e-4, 1e-4, "backward bias");
}

TEST(Conv2d, MatchesNaiveReference) {
  uint64_t seed = 1;
  for (const ConvCase& k : Cases()) CheckAgainstReference(k, seed++);
}

TEST(Conv2d, MatchesNaiveReferenceOnAnyThreadCount) {
  // 1 thread: serial path. 3 and 4: batch-parallel with per-thread partial
  // weight gradients and uneven splits, or serial when the batch is small.
  for (int threads : {1, 3, 4}) {
    SetNumThreads(threads);
    uint64_t seed = 100;
    for (const ConvCase& k : Cases()) CheckAgainstReference(k, seed++);
  }
  SetNumThreads(0);
}

// bf16 products with float32 sums (as under autocast) on every convolution
// path: im2col and direct (1x1), one image and several per GEMM, the
// flipped-kernel input gradient (16 channels or more) and col2im, on one and
// two threads.
TEST(Conv2d, Bfloat16MatchesReferenceOfRoundedOperands) {
  std::vector<ConvCase> cases = Cases();
  cases.push_back({1, 32, 24, 24, 8, 3, 3, 1, 1, 1, 1, true});
  cases.push_back({67, 3, 6, 6, 4, 3, 3, 2, 2, 1, 1, true});
  cases.push_back({3, 20, 12, 12, 24, 3, 3, 1, 1, 1, 1, false});
  for (ConvLibrary library : {ConvLibrary::kDive, ConvLibrary::kOneDnn}) {
    const ScopedConvLibrary use(library);
    for (int threads : {1, 2}) {
      SetNumThreads(threads);
      uint64_t seed = 900;
      for (const ConvCase& k : cases) {
        CheckAgainstReference(k, seed++, MatmulPrecision::kBfloat16);
      }
    }
  }
  SetNumThreads(0);
}

// Which library runs a bf16 convolution: with kAuto, oneDNN on the shapes
// of tensor/conv_onednn.h's rules and where the CPU has AVX512-BF16; never
// in float32.
TEST(Conv2d, OneDnnTakesTheMeasuredShapes) {
  const auto takes = [](const ConvCase& k, ConvPass pass = ConvPass::kForward) {
    return Conv2dUsesOneDnn(k.x_shape(), k.w_shape(), k.params(), pass);
  };
  const ConvCase resnet{32, 64, 24, 24, 64, 3, 3, 1, 1, 1, 1, true};
  const ConvCase pointwise{32, 96, 22, 22, 96, 1, 1, 1, 1, 0, 0, true};
  const ConvCase stem{32, 1, 96, 96, 64, 7, 7, 2, 2, 3, 3, true};
  const ConvCase small_map{32, 512, 3, 3, 512, 3, 3, 1, 1, 1, 1, true};
  EXPECT_FALSE(takes(resnet));  // float32
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  const bool has_bf16 = ActiveIsa() >= Isa::kAvx512Bf16;
  EXPECT_EQ(takes(resnet), has_bf16);
  EXPECT_EQ(takes(resnet, ConvPass::kWeightGradient), has_bf16);
  EXPECT_EQ(takes(resnet, ConvPass::kInputGradient), has_bf16);
  EXPECT_FALSE(takes(pointwise));
  EXPECT_FALSE(takes(pointwise, ConvPass::kWeightGradient));
  EXPECT_EQ(takes(pointwise, ConvPass::kInputGradient), has_bf16);
  EXPECT_FALSE(takes(stem));
  EXPECT_FALSE(takes(stem, ConvPass::kInputGradient));
  EXPECT_FALSE(takes(small_map));
  EXPECT_EQ(takes(small_map, ConvPass::kInputGradient), has_bf16);
  {
    const ScopedConvLibrary dive(ConvLibrary::kDive);
    EXPECT_FALSE(takes(resnet));
  }
  const ScopedConvLibrary onednn(ConvLibrary::kOneDnn);
  EXPECT_EQ(takes(pointwise), has_bf16);
  EXPECT_EQ(takes(small_map), has_bf16);
}

// ... and the rounding happens: bf16 outputs differ from float32 ones by
// about bf16's precision.
TEST(Conv2d, Bfloat16DiffersFromFloat32ByItsPrecision) {
  const ConvCase k{4, 8, 10, 10, 16, 3, 3, 1, 1, 1, 1, false};
  Generator gen(3);
  const Tensor x = gen.Normal(k.x_shape(), 0, 1);
  const Tensor w = gen.Normal(k.w_shape(), 0, 1);
  const std::vector<float> y32 =
      Conv2dForward(x, w, Tensor(), k.params()).ToVector();
  std::vector<float> y16;
  {
    const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
    y16 = Conv2dForward(x, w, Tensor(), k.params()).ToVector();
  }
  double worst = 0;
  for (size_t i = 0; i < y32.size(); ++i) {
    worst = std::max<double>(worst, std::fabs(y16[i] - y32[i]));
  }
  // Sums of 72 products of N(0, 1) values (magnitude ~8): bf16's relative
  // rounding of 2^-9 per operand gives errors of ~1e-2 to 1e-1.
  EXPECT_GT(worst, 1e-3);
  EXPECT_LT(worst, 0.5);
}

// Small output maps (OH*OW < 128) run several images per GEMM, the chunks
// side by side in one column buffer. The batches below split into uneven
// chunks (the last one shorter), into several chunks (parallel over chunks
// with per-thread partial weight gradients) or into just one.
TEST(Conv2d, ChunkedSmallMapsMatchNaiveReference) {
  const std::vector<ConvCase> cases = {
      // n  c  h  w  oc kh kw sh sw ph pw bias
      {67, 3, 6, 6, 4, 3, 3, 2, 2, 1, 1, true},    // 3x3 out, stride 2
      {5, 3, 6, 6, 4, 3, 3, 2, 2, 1, 1, false},    // 3x3 out, one chunk
      {71, 2, 4, 4, 3, 3, 3, 1, 1, 0, 0, true},    // 2x2 out, no padding
      {37, 5, 4, 4, 3, 1, 1, 1, 1, 0, 0, true},    // 1x1, 4x4 out
      {33, 4, 5, 7, 6, 3, 2, 2, 3, 1, 0, false},   // rectangular, mixed
      {40, 6, 10, 10, 8, 5, 5, 1, 1, 2, 2, true},  // 10x10 out, padded
  };
  for (int threads : {1, 2, 3}) {
    SetNumThreads(threads);
    uint64_t seed = 500;
    for (const ConvCase& k : cases) CheckAgainstReference(k, seed++);
  }
  SetNumThreads(0);
}

// Im2col blocks spanning several GEMM blocks (CKK = 288 > 256 along k, 576
// output columns > 512), with a single image, so the GEMM itself splits the
// work between threads and computes im2col blocks on each.
TEST(Conv2d, LargeLayerMatchesNaiveReference) {
  const std::vector<ConvCase> cases = {
      // n  c   h   w  oc kh kw sh sw ph pw bias
      {1, 32, 24, 24, 8, 3, 3, 1, 1, 1, 1, true},
      {2, 40, 26, 25, 13, 3, 3, 1, 1, 0, 2, false},
  };
  for (int threads : {1, 2}) {
    SetNumThreads(threads);
    uint64_t seed = 700;
    for (const ConvCase& k : cases) CheckAgainstReference(k, seed++);
  }
  SetNumThreads(0);
}

// Cases() and one case of each forward path it lacks: several images per
// GEMM (the scatter), two GEMM blocks along k, a 1x1 with many channels.
std::vector<ConvCase> ForwardPathCases() {
  std::vector<ConvCase> cases = Cases();
  cases.push_back({67, 3, 6, 6, 4, 3, 3, 2, 2, 1, 1, true});     // chunked
  cases.push_back({1, 32, 24, 24, 8, 3, 3, 1, 1, 1, 1, false});  // 2 k blocks
  cases.push_back({3, 20, 12, 12, 24, 1, 1, 1, 1, 0, 0, true});  // 1x1
  return cases;
}

// Runs check(case, gen) for every case, in both matmul precisions (bf16 on
// dive's kernels and on oneDNN's, tensor/conv_onednn.h, where the CPU runs
// them) and on one and two threads; the cases' generators are seeded seed,
// seed + 1, ...
template <typename F>
void ForEachPrecisionAndThreads(const std::vector<ConvCase>& cases,
                                uint64_t seed, const F& check) {
  for (MatmulPrecision precision :
       {MatmulPrecision::kFloat32, MatmulPrecision::kBfloat16}) {
    const ScopedMatmulPrecision scope(precision);
    for (ConvLibrary library : {ConvLibrary::kDive, ConvLibrary::kOneDnn}) {
      const ScopedConvLibrary use(library);
      for (int threads : {1, 2}) {
        SetNumThreads(threads);
        for (size_t i = 0; i < cases.size(); ++i) {
          SCOPED_TRACE(cases[i].ToString() +
                       (library == ConvLibrary::kOneDnn ? " onednn" : ""));
          Generator gen(seed + i);
          check(cases[i], gen);
        }
      }
    }
  }
  SetNumThreads(0);
}

// The epilogue (a residual added, then ReLU) gives, bit for bit, what the
// separate passes give: the sum is rounded in the same order, (conv + bias)
// + residual. On every forward path: one image per GEMM (the GEMM's
// epilogue, on tiles and on edges), several (the scatter), 1x1 direct; in
// float32 and bf16; on one and two threads.
TEST(Conv2d, EpilogueMatchesSeparatePasses) {
  ForEachPrecisionAndThreads(
      ForwardPathCases(), 1300, [](const ConvCase& k, Generator& gen) {
        const Tensor x = gen.Normal(k.x_shape(), 0, 1);
        const Tensor w = gen.Normal(k.w_shape(), 0, 1);
        const Tensor b = k.bias ? gen.Normal({k.oc}, 0, 1) : Tensor();
        const Tensor r = gen.Normal(k.y_shape(), 0, 1);
        const std::vector<float> plain =
            Conv2dForward(x, w, b, k.params()).ToVector();
        const std::vector<float> residual = r.ToVector();
        std::vector<float> added(plain.size()), relu(plain.size());
        for (size_t i = 0; i < plain.size(); ++i) {
          added[i] = plain[i] + residual[i];
          relu[i] = std::max(added[i], 0.0f);
        }
        EXPECT_EQ(
            Conv2dForward(x, w, b, k.params(), {.residual = r}).ToVector(),
            added);
        const std::vector<float> fused =
            Conv2dForward(x, w, b, k.params(), {.residual = r, .relu = true})
                .ToVector();
        EXPECT_EQ(fused, relu);
        std::vector<float> plain_relu = plain;
        for (float& v : plain_relu) v = std::max(v, 0.0f);
        EXPECT_EQ(Conv2dForward(x, w, b, k.params(), {.relu = true}).ToVector(),
                  plain_relu);
      });
}

// Conv2dBackward gives, bit for bit, what the ReLU's mask followed by the
// three separate gradients gives, for every request, with the ReLU's output
// in float32 or bf16 or without a ReLU; in both precisions, with dive's
// kernels, oneDNN's and the measured choice (both gradients on oneDNN, one
// of them, none), on one and two threads.
TEST(Conv2d, BackwardMatchesSeparatePasses) {
  std::vector<ConvCase> cases = ForwardPathCases();
  cases.push_back({4, 32, 12, 12, 16, 3, 3, 1, 1, 1, 1, true});  // both
  cases.push_back({4, 32, 9, 9, 16, 1, 1, 2, 2, 0, 0, true});    // dx only
  const std::vector<Conv2dGradRequest> requests = {
      {.input = true, .weight = true, .bias = true},
      {.input = true, .weight = true, .bias = true, .sum = true},
      {.input = true},
      {.weight = true, .bias = true},
      {.bias = true}};
  const auto check = [&](const ConvCase& k, Generator& gen) {
    const Tensor x = gen.Normal(k.x_shape(), 0, 1);
    const Tensor w = gen.Normal(k.w_shape(), 0, 1);
    const Tensor dy = gen.Normal(k.y_shape(), 0, 1);
    const Tensor y = gen.Normal(k.y_shape(), 0, 1);  // half of it <= 0
    for (const Tensor& relu_y : {Tensor(), y, y.To(DType::kBfloat16)}) {
      std::vector<float> masked = dy.ToVector();
      if (relu_y.defined()) {
        const std::vector<float> yv = relu_y.To(DType::kFloat32).ToVector();
        for (size_t i = 0; i < masked.size(); ++i) {
          if (!(yv[i] > 0.0f)) masked[i] = 0.0f;
        }
      }
      const Tensor g = Tensor::FromVector(masked, k.y_shape());
      for (const Conv2dGradRequest& want : requests) {
        SCOPED_TRACE(
            std::string(relu_y.defined() ? DTypeName(relu_y.dtype()) : "no") +
            " relu, request " + std::to_string(want.input) +
            std::to_string(want.weight) + std::to_string(want.bias) +
            std::to_string(want.sum));
        const Conv2dGrads r = Conv2dBackward(
            dy, relu_y, want.weight ? x : Tensor(), k.x_shape(),
            want.input ? w : Tensor(), k.w_shape(), k.params(), want);
        ASSERT_EQ(r.input.defined(), want.input);
        ASSERT_EQ(r.weight.defined(), want.weight);
        ASSERT_EQ(r.bias.defined(), want.bias);
        ASSERT_EQ(r.sum.defined(), want.sum);
        if (want.input) {
          EXPECT_EQ(
              r.input.ToVector(),
              Conv2dBackwardInput(g, w, k.x_shape(), k.params()).ToVector());
        }
        if (want.weight) {
          EXPECT_EQ(
              r.weight.ToVector(),
              Conv2dBackwardWeight(g, x, k.w_shape(), k.params()).ToVector());
        }
        if (want.bias) {
          EXPECT_EQ(r.bias.ToVector(), Conv2dBackwardBias(g).ToVector());
        }
        if (want.sum) {
          EXPECT_EQ(r.sum.dtype(), DType::kFloat32);
          EXPECT_EQ(r.sum.ToVector(), masked);
        }
      }
    }
  };
  ForEachPrecisionAndThreads(cases, 1400, check);
  // The measured choice mixes the two within one call.
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  const ScopedConvLibrary measured(ConvLibrary::kAuto);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].ToString() + " auto");
    Generator gen(1400 + i);
    check(cases[i], gen);
  }
}

// bf16 activations: an x stored in bfloat16 gives, bit for bit, what its
// float32 copy gives (the im2col widens it exactly), for the forward pass
// and the weight gradient; a bfloat16 output is the float32 output rounded
// once, after the bias, residual and ReLU. On every forward path (one image
// per GEMM, several, 1x1 direct, strided windows read by gathers), in both
// matmul precisions, on one and two threads.
TEST(Conv2d, Bfloat16ActivationsMatchTheirFloat32Copies) {
  std::vector<ConvCase> cases = ForwardPathCases();
  cases.push_back({2, 2, 40, 40, 5, 11, 11, 4, 4, 0, 0, true});  // gathers
  ForEachPrecisionAndThreads(
      cases, 1700, [](const ConvCase& k, Generator& gen) {
        const Tensor xb = gen.Normal(k.x_shape(), 0, 1).To(DType::kBfloat16);
        const Tensor xf = xb.To(DType::kFloat32);
        const Tensor w = gen.Normal(k.w_shape(), 0, 1);
        const Tensor b = k.bias ? gen.Normal({k.oc}, 0, 1) : Tensor();
        const Tensor r = gen.Normal(k.y_shape(), 0, 1);
        const Tensor dy = gen.Normal(k.y_shape(), 0, 1);
        EXPECT_EQ(Conv2dForward(xb, w, b, k.params()).ToVector(),
                  Conv2dForward(xf, w, b, k.params()).ToVector());
        EXPECT_EQ(
            Conv2dBackwardWeight(dy, xb, w.shape(), k.params()).ToVector(),
            Conv2dBackwardWeight(dy, xf, w.shape(), k.params()).ToVector());
        const Conv2dEpilogue to_bf16{
            .residual = r, .relu = true, .dtype = DType::kBfloat16};
        const Tensor yb = Conv2dForward(xb, w, b, k.params(), to_bf16);
        EXPECT_EQ(yb.dtype(), DType::kBfloat16);
        EXPECT_EQ(yb.shape(), k.y_shape());
        EXPECT_EQ(yb.ToVector(), Conv2dForward(xf, w, b, k.params(),
                                               {.residual = r, .relu = true})
                                     .To(DType::kBfloat16)
                                     .ToVector());
        // A bf16 residual is read exactly: as its float32 copy, into a
        // float32 or a bf16 output.
        const Tensor rb = r.To(DType::kBfloat16);
        const Tensor rf = rb.To(DType::kFloat32);
        for (DType out : {DType::kFloat32, DType::kBfloat16}) {
          EXPECT_EQ(Conv2dForward(xb, w, b, k.params(),
                                  {.residual = rb, .relu = true, .dtype = out})
                        .ToVector(),
                    Conv2dForward(xb, w, b, k.params(),
                                  {.residual = rf, .relu = true, .dtype = out})
                        .ToVector())
              << DTypeName(out);
        }
      });
}

TEST(Conv2d, NonContiguousInputs) {
  Generator gen(5);
  // x stored as [N, C, W, H] and viewed transposed; w likewise.
  const Tensor xt = gen.Normal({3, 2, 6, 5}, 0, 1).Transpose(2, 3);
  const Tensor wt = gen.Normal({4, 2, 3, 3}, 0, 1).Transpose(2, 3);
  const Tensor b = gen.Normal({8}, 0, 1).Slice(0, 0, 8, 2);
  ASSERT_FALSE(xt.is_contiguous());
  ASSERT_FALSE(b.is_contiguous());
  Conv2dParams p;
  p.pad_h = 1;
  const Tensor y = Conv2dForward(xt, wt, b, p);
  const Tensor want =
      Conv2dForward(xt.Contiguous(), wt.Contiguous(), b.Contiguous(), p);
  ExpectClose(y, ToDouble(want), 0, 0);
  const Tensor dyt = gen.Normal({3, 4, 4, 5}, 0, 1).Transpose(2, 3);
  ExpectClose(Conv2dBackwardInput(dyt, wt, xt.shape(), p),
              ToDouble(Conv2dBackwardInput(dyt.Contiguous(), wt.Contiguous(),
                                           xt.shape(), p)),
              0, 0);
  ExpectClose(Conv2dBackwardWeight(dyt, xt, wt.shape(), p),
              ToDouble(Conv2dBackwardWeight(dyt.Contiguous(), xt.Contiguous(),
                                            wt.shape(), p)),
              1e-6, 1e-6);
  ExpectClose(Conv2dBackwardBias(dyt),
              ToDouble(Conv2dBackwardBias(dyt.Contiguous())), 1e-6, 1e-6);
}

TEST(Conv2d, EmptyBatch) {
  const ConvCase k{0, 2, 5, 5, 3, 3, 3, 1, 1, 0, 0, true};
  const Tensor x = Tensor::Zeros(k.x_shape());
  const Tensor w = Tensor::Ones(k.w_shape());
  EXPECT_EQ(Conv2dForward(x, w, Tensor::Ones({3}), k.params()).shape(),
            k.y_shape());
  const Tensor dy = Tensor::Zeros(k.y_shape());
  EXPECT_EQ(Conv2dBackwardInput(dy, w, k.x_shape(), k.params()).shape(),
            k.x_shape());
  ExpectValues(Conv2dBackwardWeight(dy, x, k.w_shape(), k.params()),
               std::vector<float>(k.w_shape().numel(), 0.0f));
  ExpectValues(Conv2dBackwardBias(dy), {0, 0, 0});
}

// ---- Backward by finite differences -----------------------------------------

// L(x, w, b) = sum(dy * conv(x, w, b)) in double; its gradients are the
// backward kernels' outputs. Central differences of this (linear) function in
// double are exact up to rounding.
TEST(Conv2d, BackwardMatchesFiniteDifferences) {
  const std::vector<ConvCase> cases = {
      {2, 2, 5, 4, 3, 3, 2, 2, 1, 1, 1, true},
      {3, 3, 4, 4, 2, 1, 1, 1, 1, 0, 0, true},
      {1, 2, 6, 6, 2, 3, 3, 2, 2, 0, 1, true},
  };
  uint64_t seed = 40;
  for (const ConvCase& k : cases) {
    SCOPED_TRACE(k.ToString());
    Generator gen(seed++);
    const Tensor x = gen.Normal(k.x_shape(), 0, 1);
    const Tensor w = gen.Normal(k.w_shape(), 0, 1);
    const Tensor b = gen.Normal({k.oc}, 0, 1);
    const Tensor dy = gen.Normal(k.y_shape(), 0, 1);
    std::vector<double> xd = ToDouble(x), wd = ToDouble(w), bd = ToDouble(b);
    const std::vector<double> dyd = ToDouble(dy);
    auto loss = [&]() { return Dot(dyd, RefConv(k, xd, wd, bd)); };
    auto numeric = [&](std::vector<double>* v) {
      return CentralDifference(loss, v, 1e-3);
    };
    ExpectClose(Conv2dBackwardInput(dy, w, k.x_shape(), k.params()),
                numeric(&xd), 1e-4, 1e-4, "dx");
    ExpectClose(Conv2dBackwardWeight(dy, x, k.w_shape(), k.params()),
                numeric(&wd), 1e-4, 1e-4, "dw");
    ExpectClose(Conv2dBackwardBias(dy), numeric(&bd), 1e-4, 1e-4, "db");
  }
}

// ---- Errors -----------------------------------------------------------------

// ---- Chains of convolutions
// --------------------------------------------------

// NiN's first block at a quarter of its width (an 11x11 stride-4 convolution
// of one channel, then two 1x1 ones); a chain of 3x3 convolutions with and
// without bias and ReLU; two ResNet blocks (the first downsampling, with
// a strided 1x1 shortcut stored in float32; the second adding its input);
// and VGG-like convolutions with max pooling between them (2x2, and 3x3
// stride 2 with padding).
std::vector<std::vector<Conv2dStage>> ChainCases(Generator& gen) {
  auto stage = [&gen](int64_t oc, int64_t c, int64_t k, Conv2dParams p,
                      bool bias, bool relu, int input = Conv2dStage::kPrevious,
                      int residual = Conv2dStage::kNone) {
    return Conv2dStage{gen.Normal({oc, c, k, k}, 0, 0.2f),
                       bias ? gen.Normal({oc}, 0, 1) : Tensor(),
                       p,
                       relu,
                       input,
                       residual};
  };
  auto pool = [](Pool2dParams p) {
    Conv2dStage s;
    s.max_pool = p;
    return s;
  };
  const Conv2dParams same{1, 1, 1, 1}, halve{2, 2, 1, 1};
  Conv2dStage shortcut = stage(32, 16, 1, {2, 2, 0, 0}, true, false, 0);
  shortcut.dtype = DType::kFloat32;  // added exactly
  return {{stage(24, 1, 11, {4, 4, 0, 0}, true, true),
           stage(24, 24, 1, {}, true, true), stage(24, 24, 1, {}, true, true)},
          {stage(16, 16, 3, same, false, true),
           stage(32, 16, 3, halve, true, false),
           stage(20, 32, 3, same, true, true)},
          {stage(32, 16, 3, halve, true, true, 0), shortcut,
           stage(32, 32, 3, same, true, true, 1, 2),
           stage(32, 32, 3, same, true, true),
           stage(32, 32, 3, same, true, true, 4, 3)},
          {stage(16, 16, 3, same, true, true), pool({2, 2, 2, 2}),
           stage(32, 16, 3, same, false, true), pool({3, 3, 2, 2, 1, 1}),
           stage(20, 32, 1, {}, true, false)}};
}
Shape ChainInput(const std::vector<Conv2dStage>& stages) {
  return stages[0].weight.dim(1) == 1 ? Shape{3, 1, 48, 48}
                                      : Shape{3, 16, 13, 13};
}

// Conv2dForward calls, as Conv2dChainForward documents them.
Tensor ChainByCalls(const Tensor& x, const std::vector<Conv2dStage>& stages,
                    DType between, DType dtype) {
  std::vector<Tensor> values = {x};
  for (size_t i = 0; i < stages.size(); ++i) {
    const Conv2dStage& s = stages[i];
    const DType stored =
        i + 1 == stages.size() ? dtype : s.dtype.value_or(between);
    const Tensor in = values[s.input == Conv2dStage::kPrevious ? i : s.input];
    if (s.max_pool.has_value()) {
      values.push_back(MaxPool2dForward(in, *s.max_pool, nullptr).To(stored));
      continue;
    }
    values.push_back(Conv2dForward(
        in, s.weight, s.bias, s.params,
        {.residual =
             s.residual == Conv2dStage::kNone ? Tensor() : values[s.residual],
         .relu = s.relu,
         .dtype = stored}));
  }
  return values.back();
}

std::vector<float> AsFloats(const Tensor& t) {
  return t.dtype() == DType::kFloat32 ? t.ToVector()
                                      : t.To(DType::kFloat32).ToVector();
}

// A chain gives, bit for bit, what the convolutions one by one give: in
// float32; in bf16 on dive's kernels; and on oneDNN, where its activations
// stay in oneDNN's layout, what oneDNN's convolutions give one by one. For
// float32 and bf16 inputs and outputs, on one and two threads.
TEST(Conv2d, ChainMatchesTheConvolutionsOneByOne) {
  Generator gen(77);
  for (const std::vector<Conv2dStage>& stages : ChainCases(gen)) {
    const Tensor x32 = gen.Normal(ChainInput(stages), 0, 1);
    for (DType in : {DType::kFloat32, DType::kBfloat16}) {
      const Tensor x = in == DType::kFloat32 ? x32 : x32.To(in);
      for (DType out : {DType::kFloat32, DType::kBfloat16}) {
        for (int threads : {1, 2}) {
          SetNumThreads(threads);
          SCOPED_TRACE(absl::StrCat("input ", DTypeName(in), ", output ",
                                    DTypeName(out), ", threads ", threads));
          EXPECT_FALSE(Conv2dChainUsesOneDnn(x.shape(), stages));
          EXPECT_EQ(AsFloats(Conv2dChainForward(x, stages, out)),
                    AsFloats(ChainByCalls(x, stages, DType::kFloat32, out)));
          const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
          for (ConvLibrary library :
               {ConvLibrary::kDive, ConvLibrary::kOneDnn}) {
            const ScopedConvLibrary use(library);
            EXPECT_EQ(Conv2dChainUsesOneDnn(x.shape(), stages),
                      library == ConvLibrary::kOneDnn &&
                          ActiveIsa() >= Isa::kAvx512Bf16);
            const Tensor y = Conv2dChainForward(x, stages, out);
            EXPECT_EQ(y.dtype(), out);
            EXPECT_EQ(AsFloats(y),
                      AsFloats(ChainByCalls(x, stages, DType::kBfloat16, out)));
          }
        }
      }
    }
  }
  SetNumThreads(0);
}

// Frozen weights (Tensor::Frozen): each kernel keeps what it derives from
// them (dive's packed panels, oneDNN's blocked bf16 weights) and gives, bit
// for bit, what the same weights give unfrozen, at the first call and the
// later ones; single convolutions and chains, float32 and bf16, both
// libraries.
TEST(Conv2d, FrozenWeightsGiveTheSameValues) {
  Generator gen(79);
  for (std::vector<Conv2dStage> stages : ChainCases(gen)) {
    const Tensor x = gen.Normal(ChainInput(stages), 0, 1);
    std::vector<Conv2dStage> frozen = stages;
    for (Conv2dStage& stage : frozen) {
      if (!stage.max_pool.has_value()) stage.weight = stage.weight.Frozen();
    }
    const Conv2dStage& first = stages[0];
    const Tensor& first_frozen = frozen[0].weight;
    for (MatmulPrecision precision :
         {MatmulPrecision::kFloat32, MatmulPrecision::kBfloat16}) {
      const ScopedMatmulPrecision scope(precision);
      for (ConvLibrary library : {ConvLibrary::kDive, ConvLibrary::kOneDnn}) {
        const ScopedConvLibrary use(library);
        SCOPED_TRACE(absl::StrCat(
            precision == MatmulPrecision::kBfloat16 ? "bf16" : "float32",
            library == ConvLibrary::kDive ? ", dive" : ", oneDNN"));
        const Conv2dEpilogue epilogue{.relu = true};
        const std::vector<float> want =
            Conv2dForward(x, first.weight, first.bias, first.params, epilogue)
                .ToVector();
        const std::vector<float> chain =
            AsFloats(Conv2dChainForward(x, stages, DType::kFloat32));
        for (int call = 0; call < 2; ++call) {
          EXPECT_EQ(
              Conv2dForward(x, first_frozen, first.bias, first.params, epilogue)
                  .ToVector(),
              want);
          EXPECT_EQ(AsFloats(Conv2dChainForward(x, frozen, DType::kFloat32)),
                    chain);
        }
      }
    }
    EXPECT_GE(first_frozen.frozen_forms()->size(), 1u);
    EXPECT_EQ(first.weight.frozen_forms(), nullptr);
  }
}

// An empty batch gives an empty result of the chain's output shape, and a
// 1x1 map runs (one by one: too few positions for oneDNN's chain).
TEST(Conv2d, ChainOfAnEmptyBatchAndOfOnePosition) {
  Generator gen(80);
  const std::vector<Conv2dStage> stages = ChainCases(gen)[1];
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  const Tensor empty = Conv2dChainForward(Tensor::Zeros({0, 16, 13, 13}),
                                          stages, DType::kFloat32);
  EXPECT_EQ(empty.shape(), Shape({0, 20, 7, 7}));
  const Tensor one = gen.Normal({2, 16, 1, 1}, 0, 1);
  EXPECT_FALSE(Conv2dChainUsesOneDnn(one.shape(), stages));
  const Tensor y = Conv2dChainForward(one, stages, DType::kBfloat16);
  EXPECT_EQ(y.shape(), Shape({2, 20, 1, 1}));
  EXPECT_EQ(AsFloats(y), AsFloats(ChainByCalls(one, stages, DType::kBfloat16,
                                               DType::kBfloat16)));
}

// Under the measured choice (kAuto), oneDNN runs a chain whose stages after
// the first have 16 input channels or more, with bf16 matmuls on a CPU that
// has them; its results are the float32 chain's within bf16's rounding.
TEST(Conv2d, ChainOnOneDnnByTheMeasuredRule) {
  Generator gen(78);
  const std::vector<std::vector<Conv2dStage>> cases = ChainCases(gen);
  const std::vector<Conv2dStage>& nin = cases[0];
  const Tensor x = gen.Normal(ChainInput(nin), 0, 1);
  const ScopedConvLibrary measured(ConvLibrary::kAuto);
  const std::vector<float> exact =
      AsFloats(Conv2dChainForward(x, nin, DType::kFloat32));
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  const bool has_bf16 = ActiveIsa() >= Isa::kAvx512Bf16;
  EXPECT_EQ(Conv2dChainUsesOneDnn(x.shape(), nin), has_bf16);
  EXPECT_FALSE(Conv2dChainUsesOneDnn(x.shape(), {nin[0]}));
  Generator narrow_gen(79);
  std::vector<Conv2dStage> narrow = nin;
  narrow[1].weight = narrow_gen.Normal({8, 24, 1, 1}, 0, 0.2f);
  narrow[1].bias = Tensor();
  narrow[2].weight = narrow_gen.Normal({24, 8, 1, 1}, 0, 0.2f);
  EXPECT_FALSE(Conv2dChainUsesOneDnn(x.shape(), narrow));  // 8 channels
  const std::vector<Conv2dStage>& resnet = cases[2];
  EXPECT_EQ(Conv2dChainUsesOneDnn(ChainInput(resnet), resnet), has_bf16);
  const std::vector<float> y =
      AsFloats(Conv2dChainForward(x, nin, DType::kFloat32));
  ASSERT_EQ(y.size(), exact.size());
  float scale = 0;
  for (float v : exact) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_NEAR(y[i], exact[i], 0.03f * scale) << "at " << i;
  }
}

class Conv2dDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// Conv2dForward of zeros of shapes `x` and `w`, without bias, dies with a
// message matching `regex`.
void ExpectForwardDies(const Shape& x, const Shape& w,
                       const std::string& regex) {
  EXPECT_DEATH(Conv2dForward(Tensor::Zeros(x), Tensor::Zeros(w), Tensor(),
                             Conv2dParams()),
               regex);
}

TEST_F(Conv2dDeathTest, ChannelMismatch) {
  ExpectForwardDies({2, 3, 8, 8}, {4, 1, 3, 3},
                    "Conv2dForward: input has 3 channels but weight expects 1 "
                    "\\(x \\[2, 3, 8, 8\\], w \\[4, 1, 3, 3\\]\\)");
  EXPECT_DEATH(
      Conv2dBackwardWeight(Tensor::Zeros({2, 4, 6, 6}),
                           Tensor::Zeros({2, 3, 8, 8}), Shape({4, 1, 3, 3}),
                           Conv2dParams()),
      "Conv2dBackwardWeight: input has 3 channels but weight expects 1");
}

TEST_F(Conv2dDeathTest, InputSmallerThanKernel) {
  ExpectForwardDies({1, 1, 2, 5}, {1, 1, 3, 3},
                    "Conv2dForward: input height 2 with padding 0 is smaller "
                    "than the kernel height 3");
  EXPECT_DEATH(ConvOutSize(2, 3, 1, 0),
               "ConvOutSize: input size 2 with padding 0 is smaller than the "
               "kernel size 3");
  EXPECT_DEATH(ConvOutSize(5, 3, 0, 0), "stride size must be positive");
}

// DIVE_CONV_LIBRARY is read once, at the first use of the library choice:
// a value that is none of the three stops the process naming it (the death
// test's child starts afresh, so the variable is read there).
TEST_F(Conv2dDeathTest, UnknownConvLibraryInTheEnvironment) {
  EXPECT_DEATH(
      {
        setenv("DIVE_CONV_LIBRARY", "fastest", 1);
        GetConvLibrary();
      },
      "DIVE_CONV_LIBRARY=fastest is not one of auto, dive, onednn");
}

TEST_F(Conv2dDeathTest, BadChains) {
  const Tensor x = Tensor::Zeros({2, 3, 8, 8});
  const Conv2dStage first{Tensor::Zeros({4, 3, 3, 3}), Tensor(), {}, true};
  EXPECT_DEATH(Conv2dChainForward(x, {}, DType::kFloat32),
               "Conv2dChainForward: a chain of no convolutions");
  EXPECT_DEATH(
      Conv2dChainForward(
          x, {first, {Tensor::Zeros({4, 5, 1, 1}), Tensor(), {}, false}},
          DType::kFloat32),
      "Conv2dChainForward: input has 4 channels but weight expects 5");
  EXPECT_DEATH(
      Conv2dChainForward(
          x, {first, {Tensor::Zeros({4, 4, 7, 7}), Tensor(), {}, false}},
          DType::kFloat32),
      "Conv2dChainForward: input height 6 with padding 0 is smaller than the "
      "kernel height 7");
  EXPECT_DEATH(
      Conv2dChainForward(
          x,
          {first, {Tensor::Zeros({4, 4, 1, 1}), Tensor::Zeros({3}), {}, false}},
          DType::kFloat32),
      "bias has shape \\[3\\] but weight has 4 output channels");
  const Conv2dStage second{Tensor::Zeros({4, 4, 3, 3}), Tensor(), {1, 1, 1, 1}};
  Conv2dStage reads_itself = second;
  reads_itself.input = 2;
  EXPECT_DEATH(Conv2dChainForward(x, {first, reads_itself}, DType::kFloat32),
               "Conv2dChainForward: stage 1 convolves value 2; it can read x "
               "\\(0\\) or an earlier stage's output \\(1 to 1\\)");
  Conv2dStage pool_adds;
  pool_adds.max_pool = Pool2dParams{2, 2, 2, 2};
  pool_adds.residual = 0;
  EXPECT_DEATH(Conv2dChainForward(x, {first, pool_adds}, DType::kFloat32),
               "Conv2dChainForward: stage 1 is a max pooling; it cannot add "
               "value 0");
  Conv2dStage pool_too_large;
  pool_too_large.max_pool = Pool2dParams{9, 9, 1, 1};
  EXPECT_DEATH(Conv2dChainForward(x, {first, pool_too_large}, DType::kFloat32),
               "Conv2dChainForward");
  Conv2dStage adds_later = second;
  adds_later.residual = 3;
  EXPECT_DEATH(Conv2dChainForward(x, {first, adds_later}, DType::kFloat32),
               "Conv2dChainForward: stage 1 adds value 3");
  Conv2dStage adds_x = second;
  adds_x.residual = 0;
  EXPECT_DEATH(Conv2dChainForward(x, {first, adds_x}, DType::kFloat32),
               "Conv2dChainForward: stage 1 gives \\[2, 4, 6, 6\\] but adds "
               "value 0 of shape \\[2, 3, 8, 8\\]");
  EXPECT_DEATH(Conv2dChainForward(x, {first}, DType::kInt32),
               "Conv2dChainForward: the output dtype must be float32 or "
               "bfloat16, got int32");
}

TEST_F(Conv2dDeathTest, BadShapes) {
  const Tensor x = Tensor::Zeros({2, 3, 8, 8});
  const Tensor w = Tensor::Zeros({4, 3, 3, 3});
  ExpectForwardDies({3, 8, 8}, w.shape(), "Conv2dForward: x must be 4-D");
  EXPECT_DEATH(Conv2dForward(x, w, Tensor::Zeros({3}), Conv2dParams()),
               "Conv2dForward: bias has shape \\[3\\] but weight has 4 output "
               "channels");
  EXPECT_DEATH(Conv2dForward(x, w, Tensor(), Conv2dParams(),
                             {.residual = Tensor::Zeros({2, 4, 6, 5})}),
               "Conv2dForward: the residual is float32 \\[2, 4, 6, 5\\] but the "
               "output is float32 \\[2, 4, 6, 6\\]");
  EXPECT_DEATH(
      Conv2dForward(x, w, Tensor(), Conv2dParams(),
                    {.residual = Tensor::Zeros({2, 4, 6, 6}, DType::kInt32)}),
      "Conv2dForward: the residual is int32 \\[2, 4, 6, 6\\] but the "
      "output is float32 \\[2, 4, 6, 6\\]");
  EXPECT_DEATH(Conv2dBackwardInput(Tensor::Zeros({2, 4, 5, 6}), w, x.shape(),
                                   Conv2dParams()),
               "Conv2dBackwardInput: dy has shape \\[2, 4, 5, 6\\] but the "
               "convolution .* gives \\[2, 4, 6, 6\\]");
  EXPECT_DEATH(
      Conv2dBackward(Tensor::Zeros({2, 4, 6, 6}), Tensor(), x, x.shape(),
                     Tensor(), w.shape(), Conv2dParams(), {.input = true}),
      "Conv2dBackward: the input gradient needs w of shape "
      "\\[4, 3, 3, 3\\]");
  EXPECT_DEATH(Conv2dBackward(Tensor::Zeros({2, 4, 6, 6}),
                              Tensor::Zeros({2, 4, 6, 5}), x, x.shape(), w,
                              w.shape(), Conv2dParams(), {.bias = true}),
               "Conv2dBackward: relu_y has shape \\[2, 4, 6, 5\\] but dy "
               "\\[2, 4, 6, 6\\]");
  // bf16 is taken where an activation is read, nowhere else.
  const Tensor xb = x.To(DType::kBfloat16), wb = w.To(DType::kBfloat16);
  EXPECT_DEATH(Conv2dForward(x, wb, Tensor(), Conv2dParams()),
               "Conv2dForward: w must be float32, got bfloat16");
  EXPECT_DEATH(Conv2dForward(xb, w, Tensor(), Conv2dParams(),
                             {.dtype = DType::kInt64}),
               "Conv2dForward: the output dtype must be float32 or bfloat16, "
               "got int64");
  EXPECT_DEATH(Conv2dBackwardInput(Tensor::Zeros({2, 4, 6, 6}).To(
                                       DType::kBfloat16),
                                   w, x.shape(), Conv2dParams()),
               "Conv2dBackwardInput: dy must be float32, got bfloat16");
  EXPECT_DEATH(Conv2dForward(Tensor::Zeros({2, 3, 8, 8}, DType::kInt32), w,
                             Tensor(), Conv2dParams()),
               "Conv2dForward: x must be float32 or bfloat16, got int32");
}

}  // namespace
}  // namespace dive
