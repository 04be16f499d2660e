#include "models/lenet/lenet.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nn/loss.h"
#include "optim/sgd.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> ParameterNames(const nn::Module& net) {
  std::vector<std::string> names;
  for (const auto& [name, p] : net.NamedParameters()) names.push_back(name);
  return names;
}

std::vector<std::string> StateDictKeys(const nn::Module& net) {
  std::vector<std::string> keys;
  for (const auto& [key, t] : net.StateDict()) keys.push_back(key);
  return keys;
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

float MaxAbs(const Tensor& t) {
  float m = 0;
  for (float v : t.ToVector()) m = std::max(m, std::abs(v));
  return m;
}

TEST(LeNetTest, OutputShape) {
  EXPECT_EQ((*LeNet())(Variable(Normal({3, 1, 28, 28}, 0, 1))).shape(),
            Shape({3, 10}));
  EXPECT_EQ((*LeNet(16))(Variable(Normal({2, 1, 16, 16}, 0, 1))).shape(),
            Shape({2, 10}));
  EXPECT_EQ((*LeNet(kLeNetMinInputSize))(
                Variable(Normal({2, 1, 12, 12}, 0, 1)))
                .shape(),
            Shape({2, 10}));
}

TEST(LeNetTest, ParameterCountMatchesPyTorch) {
  // (1*6*25 + 6) + (6*16*25 + 16) + (400*120 + 120) + (120*84 + 84)
  // + (84*10 + 10): PyTorch's numel sum for the twin lenet(28) in
  // models/pytorch_twins.py.
  EXPECT_EQ(LeNet()->NumParameters(), 61706);
  // First Linear 16*2*2 -> 120 at 16x16, 16*1*1 at 12x12 (twins lenet(16),
  // lenet(12)).
  EXPECT_EQ(LeNet(16)->NumParameters(), 21386);
  EXPECT_EQ(LeNet(12)->NumParameters(), 15626);
}

TEST(LeNetTest, StateDictKeysMatchPyTorch) {
  // list(lenet(28).state_dict()) of the PyTorch twin, in its order.
  const std::vector<std::string> expected = {
      "0.weight", "0.bias",  "3.weight",  "3.bias",  "7.weight",
      "7.bias",   "9.weight", "9.bias", "11.weight", "11.bias"};
  auto net = LeNet();
  EXPECT_EQ(ParameterNames(*net), expected);
  EXPECT_EQ(StateDictKeys(*net), Sorted(expected));
}

TEST(LeNetTest, XavierInitialization) {
  ManualSeed(0);
  auto net = LeNet();
  const auto state = net->StateDict();
  // "7.weight" [120, 400]: Xavier bound sqrt(6 / 520) = 0.107, well above
  // PyTorch's default bound 1 / sqrt(400) = 0.05.
  const float m = MaxAbs(state.at("7.weight"));
  EXPECT_GT(m, 0.09f);
  EXPECT_LE(m, std::sqrt(6.0f / 520.0f));
  // "11.weight" [10, 84]: bound sqrt(6 / 94) = 0.253 versus 0.109.
  EXPECT_GT(MaxAbs(state.at("11.weight")), 0.2f);
  // Biases keep the default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  EXPECT_LE(MaxAbs(state.at("7.bias")), 0.05f);
  EXPECT_GT(MaxAbs(state.at("7.bias")), 0.0f);
}

TEST(LeNetTest, LossGoesDown) {
  ManualSeed(0);
  auto net = LeNet();
  const Tensor x = Normal({8, 1, 28, 28}, 0.0f, 1.0f);
  const Tensor y = Tensor::FromInt64Vector({0, 1, 2, 3, 4, 5, 6, 7}, {8});
  optim::SGD sgd(net->Parameters(), {.lr = 0.9f});
  std::vector<float> losses;
  for (int i = 0; i < 10; ++i) {
    sgd.ZeroGrad();
    Variable loss = nn::CrossEntropyLoss((*net)(Variable(x)), y);
    losses.push_back(loss.data().item());
    loss.Backward();
    sgd.Step();
  }
  EXPECT_LT(losses.back(), losses.front())
      << "first " << losses.front() << ", last " << losses.back();
}

TEST(LeNetSpecTest, Recipe) {
  const ModelSpec spec = LeNetSpec();
  EXPECT_EQ(spec.name, "lenet");
  EXPECT_FLOAT_EQ(spec.recipe.lr, 0.9f);
  EXPECT_EQ(spec.recipe.batch_size, 256);
  EXPECT_EQ(spec.recipe.epochs, 10);
  EXPECT_EQ(spec.recipe.input_size, 28);
}

TEST(LeNetSpecTest, MakeChecksInputSize) {
  const ModelSpec spec = LeNetSpec();
  auto net = spec.make(28);
  ASSERT_TRUE(net.ok()) << net.status();
  EXPECT_EQ((*net)->NumParameters(), 61706);
  EXPECT_TRUE(spec.make(12).ok());
  for (int64_t bad : {11, 0, 513}) {
    auto made = spec.make(bad);
    EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(made.status().message(), HasSubstr("LeNet"));
    EXPECT_THAT(made.status().message(), HasSubstr(std::to_string(bad)));
  }
}

}  // namespace
}  // namespace dive::models
