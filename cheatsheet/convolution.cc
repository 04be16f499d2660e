#include "cheatsheet/convolution.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "autograd/variable.h"
#include "glog/logging.h"
#include "nn/conv2d.h"
#include "nn/pool.h"
#include "tensor/pool.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace dive::cheatsheet {
namespace {

// [H, W] -> [1, 1, H, W] and back.
Tensor As4d(const Tensor& x) {
  return x.Contiguous().Reshape({1, 1, x.dim(0), x.dim(1)});
}

// nn::Conv2d with the given kernel [O, C, KH, KW], no bias, on x [C, H, W];
// the result without the batch dimension.
Tensor DiveConv(const Tensor& x, const Tensor& k, int64_t stride = 1,
                int64_t padding = 0) {
  nn::Conv2d conv(nn::Conv2dOptions(k.dim(1), k.dim(0), k.dim(2), k.dim(3))
                      .set_stride(stride)
                      .set_padding(padding)
                      .set_bias(false));
  Tensor weight = conv.weight().data();  // shares the parameter's storage
  weight.CopyFrom(k);
  autograd::NoGradGuard no_grad;
  const Tensor y = conv(autograd::Variable(x.Contiguous().Reshape(
                            {1, x.dim(0), x.dim(1), x.dim(2)})))
                       .data();
  return y.Reshape({y.dim(1), y.dim(2), y.dim(3)});
}

Tensor Run(nn::Module& m, const Tensor& x) {
  autograd::NoGradGuard no_grad;
  return m(autograd::Variable(x)).data();
}

}  // namespace

Tensor Corr2d(const Tensor& x, const Tensor& k) {
  CHECK_EQ(x.rank(), 2) << "Corr2d: x " << x.shape();
  CHECK_EQ(k.rank(), 2) << "Corr2d: k " << k.shape();
  const int64_t h = k.dim(0), w = k.dim(1);
  Tensor y = Tensor::Zeros({x.dim(0) - h + 1, x.dim(1) - w + 1});
  for (int64_t i = 0; i < y.dim(0); ++i) {
    for (int64_t j = 0; j < y.dim(1); ++j) {
      double sum = 0;  // (X[i:i+h, j:j+w] * K).sum()
      for (int64_t a = 0; a < h; ++a) {
        for (int64_t b = 0; b < w; ++b) {
          sum += static_cast<double>(x.at<float>({i + a, j + b})) *
                 k.at<float>({a, b});
        }
      }
      y.data<float>()[i * y.dim(1) + j] = static_cast<float>(sum);
    }
  }
  return y;
}

Tensor Corr2dMultiIn(const Tensor& x, const Tensor& k) {
  CHECK_EQ(x.dim(0), k.dim(0)) << "Corr2dMultiIn: channels";
  Tensor y = Corr2d(x.Select(0, 0), k.Select(0, 0));
  for (int64_t c = 1; c < x.dim(0); ++c) {
    y = ops::Add(y, Corr2d(x.Select(0, c), k.Select(0, c)));
  }
  return y;
}

Tensor Corr2dMultiInOut(const Tensor& x, const Tensor& k) {
  std::vector<Tensor> outs;
  for (int64_t o = 0; o < k.dim(0); ++o) {
    const Tensor y = Corr2dMultiIn(x, k.Select(0, o));
    outs.push_back(y.Reshape({1, y.dim(0), y.dim(1)}));
  }
  return ops::Concat(outs, 0);
}

Tensor Corr2dMultiInOut1x1(const Tensor& x, const Tensor& k) {
  const int64_t c = x.dim(0), h = x.dim(1), w = x.dim(2), o = k.dim(0);
  CHECK(k.dim(1) == c && k.dim(2) == 1 && k.dim(3) == 1)
      << "Corr2dMultiInOut1x1: k " << k.shape();
  const Tensor y = ops::MatMul(k.Contiguous().Reshape({o, c}),
                               x.Contiguous().Reshape({c, h * w}));
  return y.Reshape({o, h, w});
}

Tensor Pool2dByDefinition(const Tensor& x, int64_t ph, int64_t pw, bool max) {
  Tensor y = Tensor::Zeros({x.dim(0) - ph + 1, x.dim(1) - pw + 1});
  for (int64_t i = 0; i < y.dim(0); ++i) {
    for (int64_t j = 0; j < y.dim(1); ++j) {
      float best = x.at<float>({i, j});
      double sum = 0;
      for (int64_t a = 0; a < ph; ++a) {
        for (int64_t b = 0; b < pw; ++b) {
          const float v = x.at<float>({i + a, j + b});
          best = std::max(best, v);
          sum += v;
        }
      }
      y.data<float>()[i * y.dim(1) + j] =
          max ? best : static_cast<float>(sum / (ph * pw));
    }
  }
  return y;
}

int64_t OutSizeFormula(int64_t n, int64_t k, int64_t p, int64_t s) {
  return (n - k + p + s) / s;  // non-negative operands: / is floor
}

std::vector<DefinitionVsDive> Corr2dExamples(uint64_t seed) {
  std::vector<DefinitionVsDive> out;
  const Tensor x = Tensor::Arange(9).Reshape({3, 3});
  const Tensor k = Tensor::FromVector({0, 1, 2, 3}, {2, 2});
  out.push_back({"book: corr2d(0..8 as 3x3, [[0, 1], [2, 3]])", Corr2d(x, k),
                 DiveConv(x.Reshape({1, 3, 3}), k.Reshape({1, 1, 2, 2}))
                     .Reshape({2, 2})});
  Generator gen(seed);
  const Tensor rx = gen.Normal({6, 7}, 0, 1), rk = gen.Normal({3, 2}, 0, 1);
  out.push_back({"random 6x7 input, 3x2 kernel", Corr2d(rx, rk),
                 DiveConv(rx.Reshape({1, 6, 7}), rk.Reshape({1, 1, 3, 2}))
                     .Reshape({4, 6})});
  return out;
}

EdgeDetection LearnEdgeKernel(int iterations, uint64_t seed) {
  EdgeDetection e;
  e.x = Tensor::Ones({6, 8});
  for (int64_t i = 0; i < 6; ++i) {
    for (int64_t j = 2; j < 6; ++j) e.x.data<float>()[i * 8 + j] = 0.0f;
  }
  e.k = Tensor::FromVector({1, -1}, {1, 2});
  e.y = Corr2d(e.x, e.k);
  e.y_of_transpose = Corr2d(e.x.Transpose(0, 1).Contiguous(), e.k);
  e.lr = 3e-2f;

  ManualSeed(seed);  // the layer's initial weights
  nn::Conv2d conv(nn::Conv2dOptions(1, 1, 1, 2).set_bias(false));
  const autograd::Variable x(As4d(e.x));
  const autograd::Variable y(As4d(e.y));
  for (int i = 0; i < iterations; ++i) {
    autograd::Variable loss = Sum(Square(conv(x) - y));
    conv.ZeroGrad();
    loss.Backward();
    // The book's update: conv2d.weight.data[:] -= lr * conv2d.weight.grad.
    Tensor w = conv.weight().data();
    ops::AddInPlace(w, conv.weight().grad(), -e.lr);
    e.losses.push_back(loss.data().item());
  }
  e.learned = conv.weight().data().ToVector();
  return e;
}

std::vector<OutSizeRow> OutputSizeTable() {
  std::vector<OutSizeRow> rows = {
      {8, 3, 2, 1, 0, 0, -1, -1, "book: padding 1 keeps 8"},
      {8, 5, 4, 1, 0, 0, -1, -1, "book: 5x5, padding 2 keeps 8"},
      {8, 3, 2, 2, 0, 0, -1, -1, "book: stride 2 halves"},
      {7, 3, 0, 1, 0, 0, -1, -1, "narrow: n - k + 1"},
      {7, 3, 4, 1, 0, 0, -1, -1, "wide: p = k - 1 per side, n + k - 1"},
      {7, 3, 2, 1, 0, 0, -1, -1, "same: p = (k - 1) / 2 per side, n"},
      {28, 5, 4, 1, 0, 0, -1, -1, "LeNet conv1"},
      {28, 2, 0, 2, 0, 0, -1, -1, "LeNet pooling"},
      {224, 11, 2, 4, 0, 0, -1, -1, "AlexNet conv1"},
      {54, 3, 0, 2, 0, 0, -1, -1, "AlexNet pooling"},
      {96, 7, 6, 2, 0, 0, -1, -1, "GoogLeNet/ResNet stem"},
      {48, 3, 2, 2, 0, 0, -1, -1, "GoogLeNet/ResNet stem pooling"},
  };
  for (OutSizeRow& r : rows) {
    // dive, like PyTorch, pads the same p / 2 on each side.
    CHECK_EQ(r.p % 2, 0) << "OutputSizeTable: odd total padding";
    const int64_t pad = r.p / 2;
    r.formula = OutSizeFormula(r.n, r.k, r.p, r.s);
    const Tensor x = Tensor::Zeros({1, 1, r.n, r.n});
    nn::Conv2d conv(1, 1, r.k, r.s, pad);
    r.conv = Run(conv, x).dim(2);
    if (2 * pad <= r.k) {
      nn::MaxPool2d max_pool(r.k, r.s, pad);
      nn::AvgPool2d avg_pool(r.k, r.s, pad);
      r.max_pool = Run(max_pool, x).dim(2);
      r.avg_pool = Run(avg_pool, x).dim(2);
    }
  }
  return rows;
}

std::vector<int64_t> NonSquareOutputSize() {
  nn::Conv2d conv(
      nn::Conv2dOptions(1, 1, 3, 5).set_padding(0, 1).set_stride(3, 4));
  const Tensor y = Run(conv, Tensor::Zeros({1, 1, 8, 8}));
  return {OutSizeFormula(8, 3, 0, 3), OutSizeFormula(8, 5, 2, 4), y.dim(2),
          y.dim(3)};
}

std::vector<DefinitionVsDive> ChannelExamples(uint64_t seed) {
  std::vector<DefinitionVsDive> out;
  // X = [[0..8], [1..9]] as [2, 3, 3]; K = [[[0, 1], [2, 3]], [[1, 2], [3, 4]]].
  const Tensor x = Tensor::FromVector(
      {0, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {2, 3, 3});
  const Tensor k = Tensor::FromVector({0, 1, 2, 3, 1, 2, 3, 4}, {2, 2, 2});
  out.push_back({"6.3 multiple input channels: sum of corr2d per channel",
                 Corr2dMultiIn(x, k),
                 DiveConv(x, k.Reshape({1, 2, 2, 2})).Reshape({2, 2})});
  // K, K + 1, K + 2 stacked: [3, 2, 2, 2].
  const Tensor k3 = ops::Concat({k.Reshape({1, 2, 2, 2}),
                                 ops::AddScalar(k, 1).Reshape({1, 2, 2, 2}),
                                 ops::AddScalar(k, 2).Reshape({1, 2, 2, 2})},
                                0);
  out.push_back({"6.3 multiple output channels: K, K + 1, K + 2",
                 Corr2dMultiInOut(x, k3), DiveConv(x, k3)});
  Generator gen(seed);
  const Tensor rx = gen.Normal({3, 3, 3}, 0, 1);
  const Tensor rk = gen.Normal({2, 3, 1, 1}, 0, 1);
  out.push_back({"6.4 1x1 kernels: corr2d_multi_in_out vs Conv2d",
                 Corr2dMultiInOut(rx, rk), DiveConv(rx, rk)});
  out.push_back({"6.4 1x1 convolution as a matrix product over channels vs Conv2d",
                 Corr2dMultiInOut1x1(rx, rk), DiveConv(rx, rk)});
  return out;
}

std::vector<DefinitionVsDive> PoolingExamples() {
  std::vector<DefinitionVsDive> out;
  const Tensor x = Tensor::Arange(9).Reshape({3, 3});
  nn::MaxPool2d max2(2, /*stride=*/1);
  nn::AvgPool2d avg2(2, /*stride=*/1);
  out.push_back({"max pooling 2x2 of 0..8", Pool2dByDefinition(x, 2, 2, true),
                 Run(max2, As4d(x)).Reshape({2, 2})});
  out.push_back({"average pooling 2x2 of 0..8",
                 Pool2dByDefinition(x, 2, 2, false),
                 Run(avg2, As4d(x)).Reshape({2, 2})});

  const Tensor x16 = Tensor::Arange(16).Reshape({1, 1, 4, 4});
  nn::MaxPool2d window3(3);  // stride defaults to the window
  out.push_back({"MaxPool2d(3) of 0..15 (4x4)",
                 Tensor::FromVector({10}, {1, 1, 1, 1}), Run(window3, x16)});
  nn::MaxPool2d padded(3, /*stride=*/2, /*padding=*/1);
  out.push_back({"MaxPool2d(3, padding=1, stride=2)",
                 Tensor::FromVector({5, 7, 13, 15}, {1, 1, 2, 2}),
                 Run(padded, x16)});
  nn::MaxPool2d rect(Pool2dParams{.kernel_h = 2, .kernel_w = 3, .stride_h = 2,
                                  .stride_w = 3, .pad_h = 0, .pad_w = 1});
  out.push_back({"MaxPool2d((2, 3), padding=(0, 1), stride=(2, 3))",
                 Tensor::FromVector({5, 7, 13, 15}, {1, 1, 2, 2}),
                 Run(rect, x16)});
  const Tensor two = ops::Concat({x16, ops::AddScalar(x16, 1)}, 1);
  out.push_back({"two channels X, X + 1: pooled per channel, 2 channels out",
                 Tensor::FromVector({5, 7, 13, 15, 6, 8, 14, 16}, {1, 2, 2, 2}),
                 Run(padded, two)});
  return out;
}

}  // namespace dive::cheatsheet
