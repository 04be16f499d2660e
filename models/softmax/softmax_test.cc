#include "models/softmax/softmax.h"

#include <cmath>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "gtest/gtest.h"
#include "optim/sgd.h"
#include "tensor/random.h"

namespace dive::models {
namespace {

TEST(SoftmaxRegression, ShapeParametersAndPyTorchKeys) {
  auto net = SoftmaxRegression();
  EXPECT_EQ((*net)(Variable(Normal({3, 1, 28, 28}, 0, 1))).shape(),
            Shape({3, 10}));
  EXPECT_EQ(net->NumParameters(), 784 * 10 + 10);
  // state_dict of nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).
  std::vector<std::string> keys;
  for (const auto& [k, t] : net->StateDict()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"1.bias", "1.weight"}));
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
  optim::SGD sgd(net->Parameters(), {.lr = 0.1f});
  float first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    sgd.ZeroGrad();
    Variable loss = SoftmaxCrossEntropy((*net)(Variable(x)), y);
    (step == 0 ? first : last) = loss.data().item();
    loss.Backward();
    sgd.Step();
  }
  EXPECT_LT(last, 0.5f * first);
}

TEST(SoftmaxSpec, RecipeAndInputCheck) {
  const ModelSpec spec = SoftmaxSpec();
  EXPECT_EQ(spec.name, "softmax");
  EXPECT_FLOAT_EQ(spec.recipe.lr, 0.1f);
  EXPECT_EQ(spec.recipe.batch_size, 256);
  EXPECT_TRUE(spec.make(28).ok());
  absl::StatusOr<std::shared_ptr<nn::Module>> bad = spec.make(0);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("got 0"), std::string::npos);
}

}  // namespace
}  // namespace dive::models
