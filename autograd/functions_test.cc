#include "autograd/functions.h"

#include <cmath>

#include "autograd/grad_check.h"
#include "gtest/gtest.h"
#include "tensor/bf16.h"
#include "tensor/memory_format.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace dive::autograd {
namespace {

using Inputs = std::vector<Variable>;

Tensor Rand(const Shape& shape, uint64_t seed, float lo = -1.0f,
            float hi = 1.0f) {
  Generator gen(seed);
  return gen.Uniform(shape, lo, hi);
}

// Distinct values spaced 0.1 apart in random order: no near-ties for max
// pooling, and no values near ReLU's kink at 0.
Tensor Spaced(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  const std::vector<int64_t> perm = gen.Permutation(shape.numel());
  std::vector<float> v(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    v[i] = 0.1f * static_cast<float>(perm[i] - static_cast<int64_t>(perm.size()) / 2) +
           0.05f;
  }
  return Tensor::FromVector(v, shape);
}

#define EXPECT_GRADS_OK(f, ...)                                   \
  do {                                                            \
    absl::Status status = GradCheck(f, {__VA_ARGS__});            \
    EXPECT_TRUE(status.ok()) << status;                           \
  } while (0)

TEST(GradCheck, ElementwiseBinaryWithBroadcast) {
  const Tensor a = Rand({2, 3, 4}, 1), b = Rand({3, 1}, 2);
  const Tensor pos = Rand({3, 1}, 3, 0.5f, 2.0f);
  EXPECT_GRADS_OK([](const Inputs& in) { return in[0] + in[1]; }, a, b);
  EXPECT_GRADS_OK([](const Inputs& in) { return in[0] - in[1]; }, a, b);
  EXPECT_GRADS_OK([](const Inputs& in) { return in[0] * in[1]; }, a, b);
  EXPECT_GRADS_OK([](const Inputs& in) { return in[0] / in[1]; }, a, pos);
  EXPECT_GRADS_OK([](const Inputs& in) { return in[1] / in[0]; },
                  Rand({4}, 4, 0.5f, 2.0f), a);
}

TEST(GradCheck, ScalarOps) {
  const Tensor a = Rand({3, 4}, 5);
  EXPECT_GRADS_OK([](const Inputs& in) { return -in[0]; }, a);
  EXPECT_GRADS_OK([](const Inputs& in) { return in[0] + 2.0f; }, a);
  EXPECT_GRADS_OK([](const Inputs& in) { return in[0] - 2.0f; }, a);
  EXPECT_GRADS_OK([](const Inputs& in) { return 3.0f * in[0]; }, a);
  EXPECT_GRADS_OK([](const Inputs& in) { return in[0] / 4.0f; }, a);
}

TEST(GradCheck, Unary) {
  const Tensor a = Rand({3, 5}, 6);
  const Tensor pos = Rand({3, 5}, 7, 0.5f, 2.0f);
  EXPECT_GRADS_OK([](const Inputs& in) { return Exp(in[0]); }, a);
  EXPECT_GRADS_OK([](const Inputs& in) { return Log(in[0]); }, pos);
  EXPECT_GRADS_OK([](const Inputs& in) { return Sqrt(in[0]); }, pos);
  EXPECT_GRADS_OK([](const Inputs& in) { return Square(in[0]); }, a);
  EXPECT_GRADS_OK([](const Inputs& in) { return Pow(in[0], 3.0f); }, a);
  EXPECT_GRADS_OK([](const Inputs& in) { return Pow(in[0], 0.5f); }, pos);
  EXPECT_GRADS_OK([](const Inputs& in) { return Relu(in[0]); },
                  Spaced({3, 5}, 8));
  EXPECT_GRADS_OK([](const Inputs& in) { return Sigmoid(in[0]); }, a);
  EXPECT_GRADS_OK([](const Inputs& in) { return Tanh(in[0]); }, a);
}

TEST(GradCheck, Reductions) {
  const Tensor a = Rand({2, 3, 4}, 9);
  EXPECT_GRADS_OK([](const Inputs& in) { return Sum(in[0]); }, a);
  EXPECT_GRADS_OK([](const Inputs& in) { return Sum(in[0], {1}); }, a);
  EXPECT_GRADS_OK([](const Inputs& in) { return Sum(in[0], {0, 2}, true); },
                  a);
  EXPECT_GRADS_OK([](const Inputs& in) { return Mean(in[0], {-1}); }, a);
  EXPECT_GRADS_OK([](const Inputs& in) { return Mean(in[0]); }, a);
}

TEST(GradCheck, ShapeOps) {
  const Tensor a = Rand({2, 3, 4}, 10);
  EXPECT_GRADS_OK([](const Inputs& in) { return Reshape(in[0], {4, -1}); }, a);
  EXPECT_GRADS_OK([](const Inputs& in) { return Flatten(in[0]); }, a);
  EXPECT_GRADS_OK(
      [](const Inputs& in) { return Transpose(in[0], 0, 2) * 2.0f; }, a);
  EXPECT_GRADS_OK(
      [](const Inputs& in) { return Concat({in[0], in[1], in[0]}, 1); }, a,
      Rand({2, 1, 4}, 11));
}

// A bf16 Concat stores the parts rounded; its gradients are the float32
// Concat's: the upstream gradient, split.
TEST(Functions, Bf16ConcatRoundsValuesAndSplitsGradients) {
  const Variable a(Rand({2, 3, 2}, 20), /*requires_grad=*/true);
  const Variable leaf(Rand({2, 1, 2}, 21), /*requires_grad=*/true);
  const Variable b = Concat({leaf}, 1, DType::kBfloat16);  // a bf16 part
  Variable y = Concat({a, b}, 1, DType::kBfloat16);
  ASSERT_EQ(y.data().dtype(), DType::kBfloat16);
  const Tensor want = ops::Concat({a.data(), b.data()}, 1, DType::kBfloat16);
  EXPECT_EQ(y.data().ToVector(), want.ToVector());
  const Tensor g = Rand({2, 4, 2}, 22);
  y.Backward(g);
  EXPECT_EQ(a.grad().dtype(), DType::kFloat32);
  EXPECT_EQ(a.grad().ToVector(), g.Slice(1, 0, 3).Contiguous().ToVector());
  EXPECT_EQ(leaf.grad().ToVector(), g.Slice(1, 3, 4).Contiguous().ToVector());
}

// A bf16 input (a stored activation) pools as its float32 widening does.
TEST(Functions, Bf16GlobalAvgPoolMatchesFloat32) {
  const Variable leaf(Rand({2, 3, 4, 5}, 23), /*requires_grad=*/true);
  Variable y = GlobalAvgPool2d(Concat({leaf}, 1, DType::kBfloat16));
  const Tensor want =
      GlobalAvgPool2d(
          Variable(leaf.data().To(DType::kBfloat16).To(DType::kFloat32)))
          .data();
  ASSERT_EQ(y.shape(), Shape({2, 3, 1, 1}));
  const std::vector<float> got = y.data().ToVector(), w = want.ToVector();
  for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(got[i], w[i], 1e-6);
  y.Backward(Tensor::Ones({2, 3, 1, 1}));
  for (const float g : leaf.grad().ToVector()) EXPECT_FLOAT_EQ(g, 1.0f / 20);
}

TEST(GradCheck, MatMulAndLinear) {
  EXPECT_GRADS_OK([](const Inputs& in) { return MatMul(in[0], in[1]); },
                  Rand({3, 4}, 12), Rand({4, 5}, 13));
  EXPECT_GRADS_OK(
      [](const Inputs& in) { return Linear(in[0], in[1], in[2]); },
      Rand({3, 4}, 14), Rand({5, 4}, 15), Rand({5}, 16));
  EXPECT_GRADS_OK(
      [](const Inputs& in) { return Linear(in[0], in[1], Variable()); },
      Rand({3, 4}, 17), Rand({2, 4}, 18));
}

TEST(GradCheck, SoftmaxAndLogSoftmax) {
  const Tensor a = Rand({3, 5}, 19);
  EXPECT_GRADS_OK([](const Inputs& in) { return Softmax(in[0]); }, a);
  EXPECT_GRADS_OK([](const Inputs& in) { return LogSoftmax(in[0]); }, a);
  EXPECT_GRADS_OK([](const Inputs& in) { return Softmax(in[0], 0); }, a);
}

TEST(GradCheck, Conv2d) {
  const Conv2dParams p{.stride_h = 2, .stride_w = 1, .pad_h = 1, .pad_w = 2};
  EXPECT_GRADS_OK(
      [p](const Inputs& in) { return Conv2d(in[0], in[1], in[2], p); },
      Rand({2, 3, 5, 4}, 20), Rand({4, 3, 3, 2}, 21), Rand({4}, 22));
  // 1x1 convolution (the GEMM-only path).
  EXPECT_GRADS_OK(
      [](const Inputs& in) {
        return Conv2d(in[0], in[1], Variable(), Conv2dParams{});
      },
      Rand({2, 3, 4, 4}, 23), Rand({5, 3, 1, 1}, 24));
}

// The fused convolution: relu(conv(x) + bias + residual). The residual's
// values lie 0.05 or more from zero and the convolution's (small weights)
// within 0.02 of it, so no central difference crosses the ReLU's kink.
TEST(GradCheck, FusedConv2d) {
  const Conv2dParams p{.stride_h = 2, .stride_w = 1, .pad_h = 1, .pad_w = 0};
  const Shape y_shape{2, 3, 3, 3};  // x [2, 2, 5, 4], w [3, 2, 3, 2]
  EXPECT_GRADS_OK(
      [p](const Inputs& in) {
        return Conv2d(in[0], in[1], in[2], p, in[3], /*relu=*/true);
      },
      Rand({2, 2, 5, 4}, 50), Rand({3, 2, 3, 2}, 51, -5e-4f, 5e-4f),
      Rand({3}, 52, -5e-3f, 5e-3f), Spaced(y_shape, 53));
  // Without the ReLU, and without a bias.
  EXPECT_GRADS_OK(
      [p](const Inputs& in) {
        return Conv2d(in[0], in[1], Variable(), p, in[2], /*relu=*/false);
      },
      Rand({2, 2, 5, 4}, 54), Rand({3, 2, 3, 2}, 55), Rand(y_shape, 56));
}

// ... and it gives the separate ops' values and gradients, bit for bit,
// including where the residual needs no gradient.
TEST(FusedConv2d, MatchesSeparateOps) {
  const Conv2dParams p{.stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1};
  Variable x(Rand({2, 3, 6, 6}, 60), /*requires_grad=*/true);
  Variable w(Rand({4, 3, 3, 3}, 61), true);
  Variable b(Rand({4}, 62), true);
  for (const bool residual_grad : {true, false}) {
    Variable r(Rand({2, 4, 6, 6}, 63), residual_grad);
    const Tensor dy = Rand({2, 4, 6, 6}, 64);
    for (Variable* v : {&x, &w, &b, &r}) v->ZeroGrad();
    Variable fused = Conv2d(x, w, b, p, r, /*relu=*/true);
    fused.Backward(dy);
    const std::vector<Tensor> fused_grads = {x.grad(), w.grad(), b.grad()};
    const Tensor fused_r = residual_grad ? r.grad() : Tensor();
    for (Variable* v : {&x, &w, &b, &r}) v->ZeroGrad();
    Variable separate = Relu(Conv2d(x, w, b, p) + r);
    separate.Backward(dy);
    EXPECT_EQ(fused.data().ToVector(), separate.data().ToVector());
    EXPECT_EQ(fused_grads[0].ToVector(), x.grad().ToVector());
    EXPECT_EQ(fused_grads[1].ToVector(), w.grad().ToVector());
    EXPECT_EQ(fused_grads[2].ToVector(), b.grad().ToVector());
    if (residual_grad) {
      EXPECT_EQ(fused_r.ToVector(), r.grad().ToVector());
    } else {
      EXPECT_FALSE(r.grad().defined());
    }
  }
}

TEST(GradCheck, Pooling) {
  const Pool2dParams p{.kernel_h = 3, .kernel_w = 3, .stride_h = 2,
                       .stride_w = 2, .pad_h = 1, .pad_w = 1};
  EXPECT_GRADS_OK([p](const Inputs& in) { return MaxPool2d(in[0], p); },
                  Spaced({2, 2, 5, 5}, 25));
  EXPECT_GRADS_OK([p](const Inputs& in) { return AvgPool2d(in[0], p); },
                  Rand({2, 2, 5, 5}, 26));
  EXPECT_GRADS_OK([](const Inputs& in) { return GlobalAvgPool2d(in[0]); },
                  Rand({2, 3, 4, 3}, 27));
}

TEST(GradCheck, BatchNormTrainingAndEval) {
  for (const Shape& shape : {Shape{6, 3}, Shape{4, 3, 2, 3}}) {
    for (bool training : {true, false}) {
      const Tensor rm = Rand({3}, 28), rv = Rand({3}, 29, 0.5f, 2.0f);
      absl::Status s = GradCheck(
          [&](const Inputs& in) {
            // Fresh running-stat copies so every evaluation sees the same.
            return BatchNorm(in[0], in[1], in[2], rm.Clone(), rv.Clone(),
                             training, 0.1f, 1e-5f);
          },
          {Rand(shape, 30), Rand({3}, 31, 0.5f, 1.5f), Rand({3}, 32)},
          {.eps = 1e-2, .atol = 2e-3, .rtol = 2e-2});
      EXPECT_TRUE(s.ok()) << shape << " training=" << training << ": " << s;
    }
  }
}

// x as a channels-last copy (tensor/memory_format.h), its gradient passed
// back as it comes: what a oneDNN convolution's output is under
// SetConvMemoryFormat(kChannelsLast), in float32, where the finite
// differences are sharp.
Variable ChannelsLast(const Variable& x) {
  return Variable::FromOp(
      "ChannelsLast", ToMemoryFormat(x.data(), MemoryFormat::kChannelsLast),
      {x}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

// The layers that keep a channels-last input so, through their own
// channels-last kernels: batch norm (training and evaluation, with its
// ReLU), max and average pooling, Concat and the elementwise ops.
TEST(GradCheck, ChannelsLastInputs) {
  const Tensor rm = Rand({3}, 60), rv = Rand({3}, 61, 0.5f, 2.0f);
  for (bool training : {true, false}) {
    for (bool relu : {false, true}) {
      absl::Status s = GradCheck(
          [&](const Inputs& in) {
            const Variable x = ChannelsLast(in[0]);
            EXPECT_EQ(MemoryFormatOf(x.data()), MemoryFormat::kChannelsLast);
            const Variable y =
                BatchNorm(x, in[1], in[2], rm.Clone(), rv.Clone(), training,
                          0.1f, 1e-5f, relu);
            EXPECT_TRUE(IsChannelsLast(y.data()));
            return y;
          },
          {Spaced({4, 3, 2, 3}, 62), Rand({3}, 63, 0.5f, 1.5f),
           Tensor::FromVector({0.03f, -0.02f, 0.04f}, {3})},
          {.eps = 1e-3, .atol = 2e-3, .rtol = 2e-2});
      EXPECT_TRUE(s.ok()) << "training=" << training << " relu=" << relu << ": "
                          << s;
    }
  }
  const Pool2dParams p{3, 3, 2, 2, 1, 1};
  EXPECT_GRADS_OK(
      [p](const Inputs& in) { return MaxPool2d(ChannelsLast(in[0]), p); },
      Spaced({2, 3, 5, 5}, 64));
  EXPECT_GRADS_OK(
      [p](const Inputs& in) { return AvgPool2d(ChannelsLast(in[0]), p); },
      Rand({2, 3, 5, 5}, 65));
  EXPECT_GRADS_OK(
      [](const Inputs& in) {
        return Concat({ChannelsLast(in[0]), ChannelsLast(in[1])}, 1);
      },
      Rand({2, 2, 3, 3}, 66), Rand({2, 3, 3, 3}, 67));
  EXPECT_GRADS_OK(
      [](const Inputs& in) {
        return Relu(ChannelsLast(in[0]) * ChannelsLast(in[1]) + in[1]);
      },
      Spaced({2, 3, 2, 3}, 68), Rand({2, 3, 2, 3}, 69));
}

// BatchNorm with its ReLU fused. The inputs are fixed, so whether a
// central difference crosses the ReLU's kink is decided once: it does not.
TEST(GradCheck, BatchNormWithRelu) {
  for (bool training : {true, false}) {
    const Tensor rm = Rand({3}, 35), rv = Rand({3}, 36, 0.5f, 2.0f);
    absl::Status s = GradCheck(
        [&](const Inputs& in) {
          return BatchNorm(in[0], in[1], in[2], rm.Clone(), rv.Clone(),
                           training, 0.1f, 1e-5f, /*relu=*/true);
        },
        {Spaced({4, 3, 2, 3}, 37), Rand({3}, 38, 0.5f, 1.5f),
         Tensor::FromVector({0.03f, -0.02f, 0.04f}, {3})},
        {.eps = 1e-3, .atol = 2e-3, .rtol = 2e-2});
    EXPECT_TRUE(s.ok()) << "training=" << training << ": " << s;
  }
}

// ... and its values and gradients are Relu(BatchNorm(...))'s, bit for bit,
// in training and in evaluation, with and without gradients.
TEST(Functions, BatchNormWithReluMatchesSeparateOps) {
  const Tensor x = Rand({4, 3, 5, 2}, 39);
  const Tensor gamma = Rand({3}, 40, 0.5f, 1.5f), beta = Rand({3}, 41);
  const Tensor rm = Rand({3}, 42), rv = Rand({3}, 43, 0.5f, 2.0f);
  const Tensor dy = Rand({4, 3, 5, 2}, 44);
  for (bool training : {true, false}) {
    std::vector<std::vector<float>> got[2];
    for (const bool fused : {false, true}) {
      Variable xv(x, true), g(gamma, true), b(beta, true);
      Variable y = BatchNorm(xv, g, b, rm.Clone(), rv.Clone(), training, 0.1f,
                             1e-5f, /*relu=*/fused);
      if (!fused) y = Relu(y);
      y.Backward(dy);
      got[fused] = {y.data().ToVector(), xv.grad().ToVector(),
                    g.grad().ToVector(), b.grad().ToVector()};
      if (!training) {  // the one-pass inference path
        NoGradGuard no_grad;
        Variable z = BatchNorm(Variable(x), Variable(gamma), Variable(beta),
                               rm, rv, false, 0.1f, 1e-5f, fused);
        if (!fused) z = Relu(z);
        got[fused].push_back(z.data().ToVector());
      }
    }
    EXPECT_EQ(got[1], got[0]) << "training=" << training;
  }
}

TEST(GradCheck, DropoutWithFixedMask) {
  Generator gen(33);
  Tensor mask = gen.Bernoulli({4, 5}, 0.5f);
  ops::MulScalarInPlace(mask, 2.0f);
  EXPECT_GRADS_OK([&](const Inputs& in) { return ApplyMask(in[0], mask); },
                  Rand({4, 5}, 34));
}

TEST(GradCheck, Losses) {
  const Tensor labels = Tensor::FromInt64Vector({2, 0, 1, 2}, {4});
  EXPECT_GRADS_OK(
      [&](const Inputs& in) { return SoftmaxCrossEntropy(in[0], labels); },
      Rand({4, 3}, 35, -3.0f, 3.0f));
  EXPECT_GRADS_OK([](const Inputs& in) { return MseLoss(in[0], in[1]); },
                  Rand({3, 2}, 36), Rand({3, 2}, 37));
}

// ---- Forward values ------------------------------------------------------------

TEST(Functions, LinearMatchesFormula) {
  Variable x(Tensor::FromVector({1, 2, 3, 4}, {2, 2}));
  Variable w(Tensor::FromVector({1, 0, 0, 1, 1, 1}, {3, 2}));
  Variable b(Tensor::FromVector({10, 20, 30}, {3}));
  EXPECT_EQ(Linear(x, w, b).data().ToVector(),
            (std::vector<float>{11, 22, 33, 13, 24, 37}));
}

TEST(Functions, SoftmaxCrossEntropyValue) {
  // Row 0: logits [0, 0] label 0 -> log 2. Row 1: [1, 2, ...] label 1.
  Variable logits(Tensor::FromVector({0, 0, 1, 2}, {2, 2}));
  const Tensor labels = Tensor::FromInt64Vector({0, 1}, {2});
  const float row1 = -(2.0f - std::log(std::exp(1.0f) + std::exp(2.0f)));
  EXPECT_NEAR(SoftmaxCrossEntropy(logits, labels).data().item(),
              (std::log(2.0f) + row1) / 2.0f, 1e-6);
}

TEST(Functions, SoftmaxCrossEntropyIsStableForHugeLogits) {
  Variable logits(Tensor::FromVector({1000, 0, -1000, 1000}, {2, 2}), true);
  const Tensor labels = Tensor::FromInt64Vector({0, 0}, {2});
  Variable loss = SoftmaxCrossEntropy(logits, labels);
  EXPECT_NEAR(loss.data().item(), 1000.0f, 1e-3);  // (0 + 2000) / 2
  loss.Backward();
  for (float g : logits.grad().ToVector()) EXPECT_TRUE(std::isfinite(g));
}

TEST(Functions, MseLossValue) {
  Variable p(Tensor::FromVector({1, 2, 3}, {3})), t(Tensor::FromVector({1, 0, 0}, {3}));
  EXPECT_FLOAT_EQ(MseLoss(p, t).data().item(), (0 + 4 + 9) / 3.0f);
}

TEST(Functions, DropoutKeepsScaledValuesAndExpectation) {
  Generator gen(40);
  Variable x(Tensor::Ones({100000}));
  const std::vector<float> y = Dropout(x, 0.25f, gen).data().ToVector();
  double sum = 0;
  int zeros = 0;
  for (float v : y) {
    EXPECT_TRUE(v == 0.0f || std::fabs(v - 1.0f / 0.75f) < 1e-6);
    zeros += v == 0.0f;
    sum += v;
  }
  EXPECT_NEAR(zeros / 100000.0, 0.25, 0.01);
  EXPECT_NEAR(sum / 100000.0, 1.0, 0.01);
}

TEST(Functions, BatchNormEvalUsesRunningStatistics) {
  Variable x(Tensor::FromVector({1, 2, 3, 4}, {2, 2}));
  Variable gamma(Tensor::FromVector({2, 1}, {2})), beta(Tensor::FromVector({0, 1}, {2}));
  const Tensor rm = Tensor::FromVector({1, 0}, {2});
  const Tensor rv = Tensor::FromVector({4, 1}, {2});
  const std::vector<float> y =
      BatchNorm(x, gamma, beta, rm, rv, false, 0.1f, 0.0f).data().ToVector();
  // channel 0: 2 * (x - 1) / 2; channel 1: (x - 0) / 1 + 1
  EXPECT_EQ(y, (std::vector<float>{0, 3, 2, 5}));
}

// Parameters that require gradients do not make evaluation under
// NoGradGuard build a graph: it takes the one-pass kernel, which honours the
// output dtype (bf16 for a convolution's input) and gives the values of the
// composed path that gradients need.
TEST(Functions, BatchNormEvalWithoutGradIgnoresParametersRequiringGrad) {
  const Tensor x =
      Tensor::FromVector({1, -2, 3, 4, -5, 6, 0.3f, 8}, {2, 2, 1, 2});
  Variable gamma(Tensor::FromVector({2, 0.5f}, {2}), /*requires_grad=*/true);
  Variable beta(Tensor::FromVector({0, 1}, {2}), /*requires_grad=*/true);
  const Tensor rm = Tensor::FromVector({1, 0}, {2});
  const Tensor rv = Tensor::FromVector({4, 1}, {2});
  const Variable composed = BatchNorm(Variable(x), gamma, beta, rm, rv, false,
                                      0.1f, 0.0f, /*relu=*/true);
  ASSERT_TRUE(composed.requires_grad());
  NoGradGuard no_grad;
  const Variable y = BatchNorm(Variable(x), gamma, beta, rm, rv, false, 0.1f,
                               0.0f, /*relu=*/true, DType::kBfloat16);
  EXPECT_FALSE(y.requires_grad());
  ASSERT_EQ(y.data().dtype(), DType::kBfloat16);
  const std::vector<float> expected = composed.data().ToVector();
  const std::vector<float> got = y.data().To(DType::kFloat32).ToVector();
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(got[i], RoundToBf16(expected[i])) << "at " << i;
  }
}

TEST(FunctionsDeathTest, CrossEntropyRejectsLabelOutOfRange) {
  Variable logits(Tensor::Zeros({2, 3}));
  EXPECT_DEATH(SoftmaxCrossEntropy(logits, Tensor::FromInt64Vector({0, 3}, {2})),
               "label 3 at index 1 is outside \\[0, 3\\)");
}

TEST(FunctionsDeathTest, CrossEntropyNamesLabelShape) {
  EXPECT_DEATH(SoftmaxCrossEntropy(Variable(Tensor::Zeros({2, 3})),
                                   Tensor::FromInt64Vector({0, 1, 2}, {3})),
               "labels must be int64 \\[2\\], got int64 \\[3\\]");
}

TEST(FunctionsDeathTest, LinearNamesShapes) {
  Variable x(Tensor::Zeros({2, 3})), w(Tensor::Zeros({4, 5}));
  EXPECT_DEATH(Linear(x, w, Variable()),
               "input has 3 features but weight \\[4, 5\\] expects 5");
}

TEST(FunctionsDeathTest, AddNamesBothShapes) {
  Variable a(Tensor::Zeros({2, 3})), b(Tensor::Zeros({4}));
  EXPECT_DEATH(a + b, "Add: shapes \\[2, 3\\] and \\[4\\] cannot be broadcast");
}

}  // namespace
}  // namespace dive::autograd
