#include "optim/clip_grad.h"

#include <cmath>
#include <vector>

#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "tensor/tensor.h"

namespace dive::optim {
namespace {

autograd::Variable ParamWithGrad(std::vector<float> grad) {
  const int64_t n = static_cast<int64_t>(grad.size());
  autograd::Variable p(Tensor::Zeros({n}), /*requires_grad=*/true);
  p.set_grad(Tensor::FromVector(grad, {n}));
  return p;
}

TEST(ClipGradNormTest, ScalesToMaxNormAndReturnsPreClipNorm) {
  // Global norm sqrt(3^2 + 4^2 + 12^2) = 13.
  autograd::Variable a = ParamWithGrad({3, 4});
  autograd::Variable b = ParamWithGrad({12});
  autograd::Variable no_grad(Tensor::Zeros({2}), /*requires_grad=*/true);
  const float norm = ClipGradNorm({a, b, no_grad}, /*max_norm=*/6.5f);
  EXPECT_FLOAT_EQ(norm, 13.0f);
  const float coef = 6.5f / (13.0f + 1e-6f);
  EXPECT_FLOAT_EQ(a.grad().at<float>({0}), 3 * coef);
  EXPECT_FLOAT_EQ(a.grad().at<float>({1}), 4 * coef);
  EXPECT_FLOAT_EQ(b.grad().at<float>({0}), 12 * coef);
  EXPECT_FALSE(no_grad.grad().defined());
  // The clipped norm is max_norm (to float precision).
  const float after = std::sqrt(std::pow(a.grad().at<float>({0}), 2) +
                                std::pow(a.grad().at<float>({1}), 2) +
                                std::pow(b.grad().at<float>({0}), 2));
  EXPECT_NEAR(after, 6.5f, 1e-5f);
  // Clipping again is (almost) a no-op and reports the clipped norm.
  EXPECT_NEAR(ClipGradNorm({a, b}, 6.5f), 6.5f, 1e-5f);
}

TEST(ClipGradNormTest, BelowMaxNormLeavesGradientsAlone) {
  autograd::Variable a = ParamWithGrad({3, 4});
  const Tensor before = a.grad();
  EXPECT_FLOAT_EQ(ClipGradNorm({a}, 10.0f), 5.0f);
  EXPECT_TRUE(a.grad().SharesStorage(before));
  EXPECT_EQ(a.grad().ToVector(), (std::vector<float>{3, 4}));
}

TEST(ClipGradNormTest, NeverWritesASharedGradientTensor) {
  const Tensor shared = Tensor::FromVector({6, 8}, {2});
  autograd::Variable a(Tensor::Zeros({2}), /*requires_grad=*/true);
  autograd::Variable b(Tensor::Zeros({2}), /*requires_grad=*/true);
  a.set_grad(shared);
  b.set_grad(shared);
  // Global norm sqrt(2 * 100).
  EXPECT_NEAR(ClipGradNorm({a, b}, 1.0f), std::sqrt(200.0f), 1e-5f);
  EXPECT_EQ(shared.ToVector(), (std::vector<float>{6, 8}));
  const float coef = 1.0f / (std::sqrt(200.0f) + 1e-6f);
  EXPECT_NEAR(a.grad().at<float>({0}), 6 * coef, 1e-6f);
  EXPECT_NEAR(b.grad().at<float>({1}), 8 * coef, 1e-6f);
}

TEST(ClipGradNormTest, ParameterListedTwiceCountsOnce) {
  autograd::Variable a = ParamWithGrad({3, 4});
  EXPECT_FLOAT_EQ(ClipGradNorm({a, a}, 2.5f), 5.0f);
  EXPECT_NEAR(a.grad().at<float>({0}), 1.5f, 1e-6f);
  EXPECT_NEAR(a.grad().at<float>({1}), 2.0f, 1e-6f);
}

TEST(ClipGradNormTest, NoGradientsGiveZero) {
  autograd::Variable a(Tensor::Zeros({2}), /*requires_grad=*/true);
  EXPECT_EQ(ClipGradNorm({a}, 1.0f), 0.0f);
  EXPECT_FALSE(a.grad().defined());
}

TEST(ClipGradNormDeathTest, NegativeMaxNorm) {
  EXPECT_DEATH(ClipGradNorm({ParamWithGrad({1})}, -1.0f),
               "ClipGradNorm: negative max_norm");
}

}  // namespace
}  // namespace dive::optim
