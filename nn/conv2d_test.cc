#include "nn/conv2d.h"

#include <vector>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
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
