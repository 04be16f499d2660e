#include "models/lenet/lenet.h"

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

TEST(LeNetTest, OutputShape) {
  EXPECT_EQ(
      (*LeNet())(autograd::Variable(Normal({3, 1, 28, 28}, 0, 1))).shape(),
      Shape({3, 10}));
  EXPECT_EQ(
      (*LeNet(16))(autograd::Variable(Normal({2, 1, 16, 16}, 0, 1))).shape(),
      Shape({2, 10}));
  EXPECT_EQ((*LeNet(kLeNetMinInputSize))(
                autograd::Variable(Normal({2, 1, 12, 12}, 0, 1)))
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
  // Biases keep the default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) = U(-0.05,
  // 0.05): of 120 draws the largest is past 0.04 unless the init is another
  // (zeros, or a narrower range; all 120 within 0.04 has odds 0.8^120).
  EXPECT_LE(MaxAbs(state.at("7.bias")), 0.05f);
  EXPECT_GT(MaxAbs(state.at("7.bias")), 0.04f);
}

TEST(LeNetTest, LossGoesDown) {
  ManualSeed(0);
  auto net = LeNet();
  const auto [x, y] = RandomBatch(8, 28);
  ExpectLossDecreases(SgdStepLosses(*net, x, y, 0.9f, 10));
}

TEST(LeNetSpecTest, MakeChecksInputSize) {
  const ModelSpec spec = LeNetSpec();
  auto net = spec.make(28);
  ASSERT_TRUE(net.ok()) << net.status();
  EXPECT_EQ((*net)->NumParameters(), 61706);
  EXPECT_TRUE(spec.make(12).ok());
  for (int64_t bad : {11, 0, 513}) ExpectRejectsInputSize(spec, bad, "LeNet");
}

}  // namespace
}  // namespace dive::models
