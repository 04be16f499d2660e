#include "models/softmax/softmax.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "models/testing.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

// Softmax regression is convex: at the book's rate, 20 SGD steps on a fixed
// batch halve the loss (zoo_models_test.cc only asks that it drop).
TEST(SoftmaxRegression, LossGoesDown) {
  ManualSeed(0);
  auto net = SoftmaxRegression();
  const Tensor x = Uniform({16, 1, 28, 28}, 0, 1);
  std::vector<int64_t> labels;
  for (int i = 0; i < 16; ++i) labels.push_back(i % 10);
  const Tensor y = Tensor::FromInt64Vector(labels, {16});
  const std::vector<float> losses = SgdStepLosses(*net, x, y, 0.1f, 20);
  EXPECT_LT(losses.back(), 0.5f * losses.front())
      << ::testing::PrintToString(losses);
}

}  // namespace
}  // namespace dive::models
