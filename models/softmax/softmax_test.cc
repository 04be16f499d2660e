#include "models/softmax/softmax.h"

#include <cmath>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "models/testing.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

TEST(SoftmaxRegression, ShapeParametersAndPyTorchKeys) {
  auto net = SoftmaxRegression();
  EXPECT_EQ((*net)(autograd::Variable(Normal({3, 1, 28, 28}, 0, 1))).shape(),
            Shape({3, 10}));
  EXPECT_EQ(net->NumParameters(), 784 * 10 + 10);
  // state_dict of nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).
  EXPECT_EQ(StateDictKeys(*net),
            (std::vector<std::string>{"1.bias", "1.weight"}));
}

TEST(SoftmaxRegression, BookInitialization) {
  ManualSeed(3);
  const auto state = SoftmaxRegression()->StateDict();
  const std::vector<float> w = state.at("1.weight").ToVector();
  double sq = 0;
  for (float v : w) sq += v * v;
  EXPECT_NEAR(std::sqrt(sq / w.size()), 0.01, 0.001);  // N(0, 0.01)
  for (float b : state.at("1.bias").ToVector()) EXPECT_EQ(b, 0.0f);
}

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

TEST(SoftmaxSpec, InputCheck) {
  const ModelSpec spec = SoftmaxSpec();
  EXPECT_TRUE(spec.make(28).ok());
  ExpectRejectsInputSize(spec, 0, "softmax regression");
}

}  // namespace
}  // namespace dive::models
