#include "nn/conv2d.h"

#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nn/batch_norm.h"
#include "nn/testing.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::nn {
namespace {

using ::testing::FloatNear;
using ::testing::Pointwise;

// Direct 7-loop convolution, independent of im2col.
std::vector<float> NaiveConv(const Tensor& x, const Tensor& w, const Tensor& b,
                             const Conv2dOptions& o) {
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3);
  const int64_t oc = w.dim(0), kh = w.dim(2), kw = w.dim(3);
  const int64_t oh = (h + 2 * o.pad_h - kh) / o.stride_h + 1;
  const int64_t ow = (wd + 2 * o.pad_w - kw) / o.stride_w + 1;
  std::vector<float> y;
  for (int64_t in = 0; in < n; ++in) {
    for (int64_t k = 0; k < oc; ++k) {
      for (int64_t i = 0; i < oh; ++i) {
        for (int64_t j = 0; j < ow; ++j) {
          double acc = b.defined() ? b.at<float>({k}) : 0.0;
          for (int64_t ch = 0; ch < c; ++ch) {
            for (int64_t a = 0; a < kh; ++a) {
              for (int64_t bb = 0; bb < kw; ++bb) {
                const int64_t r = i * o.stride_h - o.pad_h + a;
                const int64_t s = j * o.stride_w - o.pad_w + bb;
                if (r < 0 || r >= h || s < 0 || s >= wd) continue;
                acc += x.at<float>({in, ch, r, s}) * w.at<float>({k, ch, a, bb});
              }
            }
          }
          y.push_back(static_cast<float>(acc));
        }
      }
    }
  }
  return y;
}

Tensor Image3x3() {
  return Tensor::FromVector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
}

TEST(Conv2dTest, ForwardWithSetWeights) {
  Conv2d conv(1, 1, 2);
  AssignValues(conv.weight().data(), {1, 2, 3, 4});
  AssignValues(conv.bias().data(), {0.5f});
  const autograd::Variable y = conv(autograd::Variable(Image3x3()));
  EXPECT_EQ(y.shape(), Shape({1, 1, 2, 2}));
  EXPECT_THAT(y.data().ToVector(),
              Pointwise(FloatNear(1e-5),
                        std::vector<float>{37.5f, 47.5f, 67.5f, 77.5f}));
}

TEST(Conv2dTest, StrideAndPadding) {
  Conv2d conv(1, 1, 2, /*stride=*/2, /*padding=*/1, /*bias=*/false);
  AssignValues(conv.weight().data(), {1, 2, 3, 4});
  const autograd::Variable y = conv(autograd::Variable(Image3x3()));
  // Windows start at (-1, -1), (-1, 1), (1, -1), (1, 1).
  EXPECT_THAT(y.data().ToVector(),
              Pointwise(FloatNear(1e-5), std::vector<float>{4, 18, 36, 77}));
}

TEST(Conv2dTest, MatchesNaiveConvolution) {
  ManualSeed(5);
  const Conv2dOptions options =
      Conv2dOptions(3, 4, 3, 2).set_stride(2, 1).set_padding(1, 0);
  Conv2d conv(options);
  const Tensor x = Normal({2, 3, 7, 6}, 0, 1);
  const autograd::Variable y = conv(autograd::Variable(x));
  EXPECT_EQ(y.shape(), Shape({2, 4, 4, 5}));
  EXPECT_THAT(y.data().ToVector(),
              Pointwise(FloatNear(1e-4), NaiveConv(x, conv.weight().data(),
                                                   conv.bias().data(), options)));
}

TEST(Conv2dTest, OptionsAndDescribe) {
  EXPECT_EQ(Conv2d(1, 6, 5, 1, 2).Describe(),
            "Conv2d(1, 6, kernel=5x5, stride=1, padding=2)");
  Conv2d conv(Conv2dOptions(64, 128, 1, 7).set_stride(2).set_padding(0, 3)
                  .set_bias(false));
  EXPECT_EQ(conv.Describe(),
            "Conv2d(64, 128, kernel=1x7, stride=2, padding=0x3, bias=false)");
  EXPECT_EQ(conv.weight().shape(), Shape({128, 64, 1, 7}));
  EXPECT_FALSE(conv.bias().defined());
  EXPECT_EQ(Conv2d(1, 6, 5).NumParameters(), 156);
  EXPECT_EQ(
      Conv2d(1, 6, 5, 1, 2)(autograd::Variable(Tensor::Zeros({2, 1, 28, 28})))
          .shape(),
      Shape({2, 6, 28, 28}));
}

TEST(Conv2dTest, GradCheck) {
  ManualSeed(11);
  Conv2d conv(2, 3, 3, /*stride=*/2, /*padding=*/1);
  absl::Status s = GradCheckModule(conv, Normal({2, 2, 5, 5}, 0, 1));
  EXPECT_TRUE(s.ok()) << s;
  Conv2d rect(Conv2dOptions(2, 2, 3, 2).set_stride(1, 2).set_padding(1, 0)
                  .set_bias(false));
  s = GradCheckModule(rect, Normal({1, 2, 4, 5}, 0, 1));
  EXPECT_TRUE(s.ok()) << s;
}

// ---- Fusion in evaluation mode -----------------------------------------------

// A conv + BatchNorm2d pair with statistics and affine parameters far from
// their initial values, so that folding them matters.
struct ConvBn {
  ConvBn(bool bias) {
    ManualSeed(21);
    conv = std::make_shared<Conv2d>(
        Conv2dOptions(3, 4, 3).set_padding(1).set_stride(2).set_bias(bias));
    bn = std::make_shared<BatchNorm2d>(4);
    AssignValues(bn->running_mean(), {0.5f, -0.3f, 0.1f, 2.0f});
    AssignValues(bn->running_var(), {0.25f, 4.0f, 1.5f, 0.8f});
    AssignValues(bn->weight().data(), {1.5f, -0.7f, 0.9f, 1.1f});
    AssignValues(bn->bias().data(), {0.2f, 0.4f, -0.6f, 0.0f});
  }
  // relu(bn(conv(x))) by the separate modules.
  autograd::Variable Unfused(const autograd::Variable& x, bool relu) {
    autograd::Variable y = (*bn)((*conv)(x));
    return relu ? autograd::Relu(y) : y;
  }
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm2d> bn;
};

TEST(Conv2dFusionTest, EvalFoldsBatchNormAndRelu) {
  for (const bool bias : {true, false}) {
    for (const bool relu : {true, false}) {
      SCOPED_TRACE(std::string(bias ? "bias" : "no bias") +
                   (relu ? ", relu" : ""));
      ConvBn m(bias);
      const autograd::Variable x(Normal({2, 3, 7, 6}, 0, 1));
      m.conv->Eval();
      m.bn->Eval();
      const std::vector<float> want = m.Unfused(x, relu).data().ToVector();
      m.conv->FuseWith(m.bn, relu);
      EXPECT_TRUE(m.conv->FoldsBatchNorm());
      EXPECT_EQ(m.conv->AppliesRelu(), relu);
      EXPECT_THAT((*m.conv)(x).data().ToVector(),
                  Pointwise(FloatNear(1e-5), want));
    }
  }
}

// Training mode ignores the fusion: the same values, bit for bit, and the
// BatchNorm still sees the batch.
TEST(Conv2dFusionTest, TrainingIsUnchanged) {
  ConvBn m(true);
  const autograd::Variable x(Normal({2, 3, 7, 6}, 0, 1));
  const std::vector<float> want = (*m.conv)(x).data().ToVector();
  m.conv->FuseWith(m.bn, /*relu=*/true);
  EXPECT_FALSE(m.conv->FoldsBatchNorm());
  EXPECT_FALSE(m.conv->AppliesRelu());
  EXPECT_EQ((*m.conv)(x).data().ToVector(), want);
}

// Gradients flow through the folding to the convolution's and the
// BatchNorm's parameters as they do through the separate modules.
TEST(Conv2dFusionTest, EvalGradientsMatchUnfused) {
  ConvBn m(true);
  m.conv->Eval();
  m.bn->Eval();
  const autograd::Variable x(Normal({2, 3, 7, 6}, 0, 1), true);
  const Tensor dy = Normal({2, 4, 4, 3}, 0, 1);
  const std::vector<autograd::Variable> params = {
      x, m.conv->weight(), m.conv->bias(), m.bn->weight(), m.bn->bias()};
  auto grads = [&](autograd::Variable y) {
    for (autograd::Variable p : params) p.ZeroGrad();
    y.Backward(dy);
    std::vector<std::vector<float>> g;
    for (const autograd::Variable& p : params) g.push_back(p.grad().ToVector());
    return g;
  };
  const auto want = grads(m.Unfused(x, /*relu=*/true));
  m.conv->FuseWith(m.bn, /*relu=*/true);
  const auto got = grads((*m.conv)(x));
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE("parameter " + std::to_string(i));
    EXPECT_THAT(got[i], Pointwise(FloatNear(2e-4), want[i]));
  }
}

TEST(Conv2dFusionTest, ResidualAddedBeforeTheRelu) {
  ConvBn m(true);
  m.conv->Eval();
  m.bn->Eval();
  const autograd::Variable x(Normal({2, 3, 7, 6}, 0, 1));
  const autograd::Variable r(Normal({2, 4, 4, 3}, 0, 1));
  const std::vector<float> want =
      autograd::Relu((*m.bn)((*m.conv)(x)) + r).data().ToVector();
  const std::vector<float> without_residual =
      m.Unfused(x, /*relu=*/true).data().ToVector();
  m.conv->FuseWith(m.bn, /*relu=*/true);
  int calls = 0;
  autograd::HookHandle hook = m.conv->RegisterForwardHook(
      [&calls](Module&, const autograd::Variable&, const autograd::Variable&) {
        ++calls;
        return autograd::Variable();
      });
  EXPECT_THAT(m.conv->CallWithResidual(x, r).data().ToVector(),
              Pointwise(FloatNear(1e-5), want));
  EXPECT_EQ(calls, 1);  // through operator(): hooks see the call
  // The residual was for that call only.
  EXPECT_THAT((*m.conv)(x).data().ToVector(),
              Pointwise(FloatNear(1e-5), without_residual));
}

// Without a BatchNorm the ReLU is fused in both modes, bit for bit, and
// CallThenRelu applies it once.
TEST(Conv2dFusionTest, ReluFusedInBothModes) {
  ManualSeed(22);
  Conv2d conv(2, 3, 3);
  const autograd::Variable x(Normal({1, 2, 5, 5}, 0, 1));
  const std::vector<float> want = autograd::Relu(conv(x)).data().ToVector();
  EXPECT_EQ(CallThenRelu(conv, x).data().ToVector(), want);  // unfused
  conv.FuseWith(nullptr, /*relu=*/true);
  for (const bool training : {true, false}) {
    conv.Train(training);
    EXPECT_TRUE(conv.AppliesRelu());
    EXPECT_EQ(conv(x).data().ToVector(), want);
    EXPECT_EQ(CallThenRelu(conv, x).data().ToVector(), want);
  }
}

TEST(Conv2dFusionDeathTest, BadFusions) {
  ConvBn m(true);
  EXPECT_DEATH(m.conv->FuseWith(std::make_shared<BatchNorm2d>(5), false),
               "cannot fold BatchNorm2d\\(5.*it must be a BatchNorm2d of 4 "
               "features");
  EXPECT_DEATH(m.conv->FuseWith(std::make_shared<BatchNorm1d>(4), false),
               "cannot fold BatchNorm1d\\(4");
  const autograd::Variable x(Normal({2, 3, 7, 6}, 0, 1));
  EXPECT_DEATH(m.conv->CallWithResidual(x, x),
               "CallWithResidual outside a fused evaluation");
}

TEST(Conv2dDeathTest, WrongInput) {
  Conv2d conv(1, 6, 5, 1, 2);
  EXPECT_DEATH(conv(autograd::Variable(Tensor::Zeros({32, 28, 28}))),
               "Conv2d\\(1, 6, kernel=5x5, stride=1, padding=2\\): expected "
               "input \\[N, 1, H, W\\], got \\[32, 28, 28\\]");
  EXPECT_DEATH(conv(autograd::Variable(Tensor::Zeros({32, 3, 28, 28}))),
               "expected input \\[N, 1, H, W\\], got \\[32, 3, 28, 28\\]");
  Conv2d big(1, 1, 5);
  EXPECT_DEATH(big(autograd::Variable(Tensor::Zeros({1, 1, 4, 8}))),
               "input \\[1, 1, 4, 8\\] is smaller than the kernel");
  EXPECT_DEATH(Conv2d(1, 1, 3, /*stride=*/0), "invalid options");
}

}  // namespace
}  // namespace dive::nn
