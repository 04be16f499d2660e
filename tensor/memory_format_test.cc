#include "tensor/memory_format.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tensor/batch_norm.h"
#include "tensor/conv.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/ops.h"
#include "tensor/pool.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tensor/testing.h"

namespace dive {
namespace {

constexpr MemoryFormat kLast = MemoryFormat::kChannelsLast;

void ExpectSameValues(const Tensor& got, const Tensor& want,
                      const std::string& what, double tol = 0.0) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ExpectClose(got.To(DType::kFloat32), ToDouble(want.To(DType::kFloat32)), tol,
              tol, what);
}

TEST(MemoryFormatTest, ChannelsLastIsNhwcInMemory) {
  const Tensor x = Tensor::FromVector({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
                                      {1, 3, 2, 2});  // N, C, H, W
  const Tensor last = ToMemoryFormat(x, kLast);
  EXPECT_TRUE(IsChannelsLast(last));
  EXPECT_FALSE(last.is_contiguous());
  EXPECT_EQ(MemoryFormatOf(last), kLast);
  EXPECT_EQ(MemoryFormatOf(x), MemoryFormat::kContiguous);
  EXPECT_EQ(last.shape(), x.shape());
  EXPECT_EQ(last.ToVector(), x.ToVector());  // same logical elements
  // In memory: (h, w) major, the three channels of each position together.
  const float* p = last.data();
  EXPECT_EQ(std::vector<float>(p, p + 12),
            (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  // Already channels-last: the same tensor, no copy; back: a contiguous one.
  EXPECT_TRUE(ToMemoryFormat(last, kLast).SharesStorage(last));
  EXPECT_TRUE(DenseOrContiguous(last).SharesStorage(last));
  const Tensor back = ToMemoryFormat(last, MemoryFormat::kContiguous);
  EXPECT_TRUE(back.is_contiguous());
  EXPECT_EQ(back.ToVector(), x.ToVector());
}

TEST(MemoryFormatTest, OneChannelOrOnePixelIsBothLayouts) {
  const Tensor one_channel = Tensor::Zeros({2, 1, 3, 3});
  EXPECT_TRUE(IsChannelsLast(one_channel));
  EXPECT_EQ(MemoryFormatOf(one_channel), MemoryFormat::kContiguous);
  EXPECT_TRUE(IsChannelsLast(Tensor::Zeros({2, 8, 1, 1})));
  EXPECT_FALSE(IsChannelsLast(Tensor::Zeros({2, 8, 2, 2})));
  EXPECT_FALSE(IsChannelsLast(Tensor::Zeros({8, 2})));
  // A strided view of a channels-last tensor is neither dense layout.
  const Tensor sliced =
      EmptyIn({2, 8, 4, 4}, DType::kFloat32, kLast).Slice(3, 0, 4, 2);
  EXPECT_FALSE(IsChannelsLast(sliced));
  EXPECT_TRUE(DenseOrContiguous(sliced).is_contiguous());
}

TEST(MemoryFormatDeathTest, ChannelsLastNeedsFourDimensions) {
  EXPECT_DEATH(EmptyIn({2, 3}, DType::kFloat32, kLast),
               "channels-last tensor is 4-D.*\\[2, 3\\]");
}

// DIVE_CONV_MEMORY_FORMAT is read once, at the first use of the setting: a
// value that is neither stops the process naming it (the threadsafe death
// test's child starts afresh, so the variable is read there).
TEST(MemoryFormatDeathTest, UnknownConvMemoryFormatInTheEnvironment) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        setenv("DIVE_CONV_MEMORY_FORMAT", "nhwc", 1);
        GetConvMemoryFormat();
      },
      "DIVE_CONV_MEMORY_FORMAT=nhwc is not one of contiguous, channels_last");
}

TEST(MemoryFormatTest, ElementwiseOpsKeepChannelsLast) {
  const Tensor a = Normal({2, 5, 3, 4}, 0, 1), b = Normal({2, 5, 3, 4}, 0, 1);
  const Tensor al = ToMemoryFormat(a, kLast), bl = ToMemoryFormat(b, kLast);
  const Tensor bias = Normal({5, 1, 1}, 0, 1);
  struct Case {
    std::string name;
    Tensor got, want;
  };
  const std::vector<Case> cases = {
      {"Add", ops::Add(al, bl), ops::Add(a, b)},
      {"Add, mixed layouts", ops::Add(a, bl), ops::Add(a, b)},
      {"Mul by a per-channel bias", ops::Mul(al, bias), ops::Mul(a, bias)},
      {"Relu", ops::Relu(al), ops::Relu(a)},
      {"Exp", ops::Exp(al), ops::Exp(a)},
      {"ReluBackward, bf16 y",
       ops::ReluBackward(al, ToMemoryFormat(b.To(DType::kBfloat16), kLast)),
       ops::ReluBackward(a, b.To(DType::kBfloat16))},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(IsChannelsLast(c.got) && !c.got.is_contiguous()) << c.name;
    ExpectSameValues(c.got, c.want, c.name);
  }
  // No channels-last operand of the result's shape: contiguous.
  EXPECT_TRUE(ops::Add(a, ToMemoryFormat(Normal({1, 5, 3, 4}, 0, 1), kLast))
                  .is_contiguous());
}

TEST(MemoryFormatTest, BatchNormReadsChannelsLastAsRows) {
  // 6x5 and 2x2 maps (the planes and the small-plane rows paths of NCHW),
  // float32 and bf16 inputs, with and without the fused ReLU.
  for (const Shape& shape : {Shape{4, 7, 6, 5}, Shape{6, 20, 2, 2}}) {
    for (DType dtype : {DType::kFloat32, DType::kBfloat16}) {
      for (bool relu : {false, true}) {
        const std::string what =
            shape.ToString() + " " + DTypeName(dtype) + (relu ? " relu" : "");
        const Tensor x = Normal(shape, 0.5f, 2).To(dtype);
        const Tensor xl = ToMemoryFormat(x, kLast);
        const int64_t c = shape[1];
        const Tensor gamma = Normal({c}, 1, 0.2f), beta = Normal({c}, 0, 0.2f);
        Tensor rm = Tensor::Zeros({c}), rv = Tensor::Ones({c});
        Tensor rml = Tensor::Zeros({c}), rvl = Tensor::Ones({c});
        BatchNormSaved saved, saved_l;
        const Tensor y = BatchNormTrainForward(x, gamma, beta, rm, rv, 0.1f,
                                               1e-5f, &saved, relu, dtype);
        const Tensor yl = BatchNormTrainForward(xl, gamma, beta, rml, rvl, 0.1f,
                                                1e-5f, &saved_l, relu, dtype);
        EXPECT_TRUE(IsChannelsLast(yl) && !yl.is_contiguous()) << what;
        EXPECT_EQ(yl.dtype(), dtype) << what;
        // The sums run in another order: equal up to float rounding (and
        // one bf16 rounding of y).
        const double tol = dtype == DType::kBfloat16 ? 1e-2 : 1e-5;
        ExpectSameValues(yl, y, what + " y", tol);
        ExpectSameValues(rml, rm, what + " running mean", 1e-5);
        ExpectSameValues(rvl, rv, what + " running var", 1e-5);

        // The gradient, from a contiguous dy (read in x's layout).
        const Tensor dy = Normal(shape, 0, 1);
        Tensor dx, dg, db, dxl, dgl, dbl;
        BatchNormBackward(dy, x, gamma, saved, &dx, &dg, &db);
        BatchNormBackward(dy, xl, gamma, saved_l, &dxl, &dgl, &dbl);
        EXPECT_TRUE(IsChannelsLast(dxl) && !dxl.is_contiguous()) << what;
        ExpectSameValues(dxl, dx, what + " dx", 1e-4);
        ExpectSameValues(dgl, dg, what + " dgamma", 1e-4);
        ExpectSameValues(dbl, db, what + " dbeta", 1e-4);

        const Tensor z =
            BatchNormEvalForward(x, gamma, beta, rm, rv, 1e-5f, relu, dtype);
        const Tensor zl =
            BatchNormEvalForward(xl, gamma, beta, rm, rv, 1e-5f, relu, dtype);
        EXPECT_TRUE(IsChannelsLast(zl)) << what;
        ExpectSameValues(zl, z, what + " eval y");  // the same expression
      }
    }
  }
}

TEST(MemoryFormatTest, MaxPoolingReadsChannelsLastAsItLies) {
  // The same maxima and indices as the NCHW kernels, ties, NaN and -inf
  // included, with and without padding, of float32 and bf16 inputs.
  Tensor x = Normal({3, 20, 9, 8}, 0, 1);
  float* p = x.data();
  p[5] = std::numeric_limits<float>::quiet_NaN();
  p[9 * 8 + 3] = p[9 * 8 + 4];  // a tie
  for (int64_t i = 2 * 9 * 8; i < 3 * 9 * 8; ++i) {
    p[i] = -std::numeric_limits<float>::infinity();  // a plane of -inf
  }
  for (const Pool2dParams& params :
       {Pool2dParams{2, 2, 2, 2}, Pool2dParams{3, 3, 2, 2, 1, 1},
        Pool2dParams{3, 3, 1, 1, 1, 1}}) {
    for (DType dtype : {DType::kFloat32, DType::kBfloat16}) {
      const std::string what = absl::StrCat(
          params.kernel_h, "x", params.kernel_w, " stride ", params.stride_h,
          " pad ", params.pad_h, " ", DTypeName(dtype));
      const Tensor xd = x.To(dtype);
      Tensor argmax, argmax_l;
      const Tensor y = MaxPool2dForward(xd, params, &argmax);
      const Tensor yl =
          MaxPool2dForward(ToMemoryFormat(xd, kLast), params, &argmax_l);
      EXPECT_EQ(MemoryFormatOf(yl), kLast) << what;
      EXPECT_EQ(MemoryFormatOf(argmax_l), kLast) << what;
      const std::vector<float> want = y.ToVector(), got = yl.ToVector();
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_TRUE(got[i] == want[i] ||
                    (std::isnan(got[i]) && std::isnan(want[i])))
            << what << " at " << i << ": " << got[i] << " against " << want[i];
      }
      EXPECT_EQ(argmax_l.Contiguous().ToVector(), argmax.ToVector()) << what;
      if (dtype == DType::kBfloat16) {
        // A bf16 result holds the same maxima (x's values) and indices.
        for (const Tensor& in : {xd, ToMemoryFormat(xd, kLast)}) {
          Tensor idx16;
          const Tensor y16 =
              MaxPool2dForward(in, params, &idx16, DType::kBfloat16);
          EXPECT_EQ(y16.dtype(), DType::kBfloat16);
          EXPECT_EQ(MemoryFormatOf(y16), MemoryFormatOf(in)) << what;
          const std::vector<float> v16 = y16.Contiguous().ToVector();
          for (size_t i = 0; i < want.size(); ++i) {
            ASSERT_TRUE(v16[i] == want[i] ||
                        (std::isnan(v16[i]) && std::isnan(want[i])))
                << what << " bf16 result at " << i;
          }
          EXPECT_EQ(idx16.Contiguous().ToVector(), argmax.ToVector()) << what;
        }
      }
      const Tensor dy = Normal(y.shape(), 0, 1);
      const Tensor dx = MaxPool2dBackward(dy, argmax, x.shape());
      const Tensor dxl = MaxPool2dBackward(dy, argmax_l, x.shape());
      EXPECT_EQ(MemoryFormatOf(dxl), kLast) << what;
      ExpectSameValues(dxl, dx, what + " dx", 1e-6);
    }
  }
}

TEST(MemoryFormatTest, AveragePoolingReadsChannelsLastAsItLies) {
  const Tensor x = Normal({3, 20, 9, 8}, 0, 1);
  for (const Pool2dParams& params :
       {Pool2dParams{2, 2, 2, 2}, Pool2dParams{3, 3, 2, 2, 1, 1},
        Pool2dParams{9, 8, 9, 8}}) {
    for (DType dtype : {DType::kFloat32, DType::kBfloat16}) {
      const std::string what = absl::StrCat(
          params.kernel_h, "x", params.kernel_w, " stride ", params.stride_h,
          " pad ", params.pad_h, " ", DTypeName(dtype));
      const Tensor xd = x.To(dtype);
      const Tensor y = AvgPool2dForward(xd, params);
      const Tensor yl = AvgPool2dForward(ToMemoryFormat(xd, kLast), params);
      EXPECT_TRUE(IsChannelsLast(yl)) << what;
      ExpectSameValues(yl, y, what + " y", 1e-6);
      const Tensor dy = Normal(y.shape(), 0, 1);
      const Tensor dxl =
          AvgPool2dBackward(ToMemoryFormat(dy, kLast), x.shape(), params);
      // (A gradient of 1x1 maps is both layouts, and read as contiguous.)
      if (y.dim(2) * y.dim(3) > 1)
        EXPECT_EQ(MemoryFormatOf(dxl), kLast) << what;
      ExpectSameValues(dxl, AvgPool2dBackward(dy, x.shape(), params),
                       what + " dx", 1e-6);
    }
  }
}

TEST(MemoryFormatTest, ConcatOfChannelsLastPartsIsChannelsLast) {
  const Tensor a = Normal({2, 3, 4, 5}, 0, 1), b = Normal({2, 6, 4, 5}, 0, 1);
  const Tensor al = ToMemoryFormat(a, kLast), bl = ToMemoryFormat(b, kLast);
  for (DType dtype : {DType::kFloat32, DType::kBfloat16}) {
    const Tensor want = ops::Concat({a, b}, 1, dtype);
    for (const auto& parts :
         {std::vector<Tensor>{al, bl}, std::vector<Tensor>{a, bl}}) {
      const Tensor got = ops::Concat(parts, 1, dtype);
      EXPECT_EQ(MemoryFormatOf(got), kLast);
      EXPECT_EQ(got.dtype(), dtype);
      ExpectSameValues(got, want, "concat");
    }
  }
  EXPECT_TRUE(ops::Concat({a, b}, 1).is_contiguous());
}

TEST(MemoryFormatTest, ConvolutionReadsChannelsLastInEveryPath) {
  // ResNet's 3x3 convolution (oneDNN's under bf16 on AVX512-BF16) and a
  // 1x1 one (dive's forward), in float32 and bf16 matmuls.
  struct Case {
    Shape x, w;
    Conv2dParams p;
  };
  const std::vector<Case> cases = {
      {{4, 16, 8, 8}, {24, 16, 3, 3}, {1, 1, 1, 1}},
      {{4, 16, 8, 8}, {24, 16, 3, 3}, {2, 2, 1, 1}},
      {{4, 16, 6, 6}, {8, 16, 1, 1}, {}},
      // 576 positions: the gradient's rows in three blocks (MaskedRows).
      {{4, 16, 12, 12}, {24, 16, 3, 3}, {1, 1, 1, 1}},
  };
  for (MatmulPrecision precision :
       {MatmulPrecision::kFloat32, MatmulPrecision::kBfloat16}) {
    const ScopedMatmulPrecision scope(precision);
    for (const Case& k : cases) {
      const std::string what =
          k.x.ToString() + " * " + k.w.ToString() +
          (precision == MatmulPrecision::kBfloat16 ? " bf16" : " fp32");
      const Tensor x = Normal(k.x, 0, 1), w = Normal(k.w, 0, 0.2f);
      const Tensor bias = Normal({k.w[0]}, 0, 0.2f);
      const Tensor xl = ToMemoryFormat(x, kLast);
      const Tensor residual = Normal(
          {k.x[0], k.w[0], ConvOutSize(k.x[2], k.w[2], k.p.stride_h, k.p.pad_h),
           ConvOutSize(k.x[3], k.w[3], k.p.stride_w, k.p.pad_w)},
          0, 1);
      const Conv2dEpilogue epilogue{residual, true, DType::kFloat32};
      const Conv2dEpilogue epilogue_l{ToMemoryFormat(residual, kLast), true,
                                      DType::kFloat32};
      const Tensor y = Conv2dForward(x, w, bias, k.p, epilogue);
      const Tensor yl = Conv2dForward(xl, w, bias, k.p, epilogue_l);
      const bool onednn =
          Conv2dUsesOneDnn(k.x, k.w, k.p, ConvPass::kForward, kLast);
      // oneDNN writes what it reads; dive's kernels write contiguous.
      EXPECT_EQ(MemoryFormatOf(yl), onednn ? kLast : MemoryFormat::kContiguous)
          << what;
      // oneDNN sums in another order on channels-last than on its blocked
      // layout: bf16 products, float32 sums.
      ExpectSameValues(yl, y, what + " y", onednn ? 1e-3 : 0.0);

      const Tensor dy = Normal(y.shape(), 0, 1);
      const Tensor dyl = ToMemoryFormat(dy, kLast);
      const Conv2dGradRequest all{true, true, true, true};
      const Conv2dGrads g = Conv2dBackward(dy, y, x, k.x, w, k.w, k.p, all);
      const Conv2dGrads gl = Conv2dBackward(dyl, yl, xl, k.x, w, k.w, k.p, all);
      const bool onednn_dx =
          Conv2dUsesOneDnn(k.x, k.w, k.p, ConvPass::kInputGradient, kLast);
      EXPECT_EQ(MemoryFormatOf(gl.input),
                onednn_dx ? kLast : MemoryFormat::kContiguous)
          << what;
      ExpectSameValues(gl.input, g.input, what + " dx", 1e-3);
      ExpectSameValues(gl.weight, g.weight, what + " dw", 1e-3);
      ExpectSameValues(gl.bias, g.bias, what + " dbias", 1e-4);
      ExpectSameValues(gl.sum, g.sum, what + " residual's gradient");
      ExpectSameValues(Conv2dBackwardBias(dyl), Conv2dBackwardBias(dy),
                       what + " Conv2dBackwardBias", 1e-5);
      // Without the residual's gradient, dy is masked (and where only
      // oneDNN reads it, rounded to bf16) in the pass that sums the bias's
      // gradient, which stays the sum of the unrounded values.
      const Conv2dGradRequest no_sum{true, true, true, false};
      const Conv2dGrads h = Conv2dBackward(dy, y, x, k.x, w, k.w, k.p, no_sum);
      const Conv2dGrads hl =
          Conv2dBackward(dyl, yl, xl, k.x, w, k.w, k.p, no_sum);
      ExpectSameValues(hl.input, h.input, what + " dx without sum", 1e-3);
      ExpectSameValues(hl.weight, h.weight, what + " dw without sum", 1e-3);
      ExpectSameValues(hl.bias, g.bias, what + " dbias without sum", 1e-4);
    }
  }
}

TEST(MemoryFormatTest, ConvMemoryFormatMakesOneDnnWriteChannelsLast) {
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  const Shape xs{4, 16, 8, 8}, ws{16, 16, 3, 3};
  const Conv2dParams p{1, 1, 1, 1};
  const Tensor x = Normal(xs, 0, 1), w = Normal(ws, 0, 0.2f);
  const Tensor y = Conv2dForward(x, w, Tensor(), p);
  EXPECT_TRUE(y.is_contiguous());  // the default follows x
  const ScopedConvMemoryFormat last(kLast);
  const Tensor yl = Conv2dForward(x, w, Tensor(), p);
  const Tensor dx = Conv2dBackwardInput(y, w, xs, p);
  if (Conv2dUsesOneDnn(xs, ws, p)) {
    EXPECT_EQ(MemoryFormatOf(yl), kLast);
    EXPECT_EQ(MemoryFormatOf(dx), kLast);
  } else {
    EXPECT_TRUE(yl.is_contiguous());  // dive's kernels
    EXPECT_TRUE(dx.is_contiguous());
  }
  ExpectSameValues(yl, y, "y", 1e-3);

  // A stem on one channel, whose input lies as channels-last too: oneDNN
  // takes it on channels-last activations.
  const Shape ss{4, 1, 12, 12}, sw{16, 1, 5, 5};
  const Conv2dParams sp{1, 1, 2, 2};
  const Tensor stem_x = Normal(ss, 0, 1), stem_w = Normal(sw, 0, 0.2f);
  const Tensor stem_y = Conv2dForward(stem_x, stem_w, Tensor(), sp);
  EXPECT_EQ(MemoryFormatOf(stem_y),
            Conv2dUsesOneDnn(ss, sw, sp) ? kLast : MemoryFormat::kContiguous);
  EXPECT_EQ(Conv2dUsesOneDnn(ss, sw, sp), ActiveIsa() >= Isa::kAvx512Bf16);
  const Tensor stem_dy = Normal(stem_y.shape(), 0, 1);
  const Tensor stem_dw =
      Conv2dBackwardWeight(ToMemoryFormat(stem_dy, kLast), stem_x, sw, sp);
  const ScopedConvMemoryFormat contiguous(MemoryFormat::kContiguous);
  EXPECT_TRUE(Conv2dForward(stem_x, stem_w, Tensor(), sp).is_contiguous());
  ExpectSameValues(stem_y, Conv2dForward(stem_x, stem_w, Tensor(), sp),
                   "stem y", 1e-3);
  ExpectSameValues(stem_dw, Conv2dBackwardWeight(stem_dy, stem_x, sw, sp),
                   "stem dw", 1e-3);
}

}  // namespace
}  // namespace dive
