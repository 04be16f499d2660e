#include "models/mlp/mlp.h"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "models/testing.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

// Loss on a fixed batch of 8 random images with labels 0..7, in eval mode
// (no dropout), before and after `steps` SGD steps in training mode.
std::pair<float, float> LossBeforeAfter(nn::Module& net, float lr, int steps) {
  ManualSeed(1);
  const auto [x, y] = RandomBatch(8, 28);
  return EvalLossBeforeAndAfterSgdSteps(net, x, y, lr, steps);
}

TEST(MlpTest, OutputShape) {
  EXPECT_EQ((*Mlp())(autograd::Variable(Normal({3, 1, 28, 28}, 0, 1))).shape(),
            Shape({3, 10}));
  EXPECT_EQ(
      (*Mlp(14))(autograd::Variable(Normal({2, 1, 14, 14}, 0, 1))).shape(),
      Shape({2, 10}));
}

TEST(MlpTest, ParameterCountMatchesPyTorch) {
  // (784 * 256 + 256) + (256 * 10 + 10): PyTorch's numel sum for the twin
  // mlp(28) in models/pytorch_twins.py.
  EXPECT_EQ(Mlp()->NumParameters(), 203530);
  EXPECT_EQ(Mlp(14)->NumParameters(), 53002);  // twin mlp(14)
}

TEST(MlpTest, StateDictKeysMatchPyTorch) {
  // list(mlp(28).state_dict()) of the PyTorch twin, in its order.
  const std::vector<std::string> expected = {"1.weight", "1.bias", "3.weight",
                                             "3.bias"};
  auto net = Mlp();
  EXPECT_EQ(ParameterNames(*net), expected);
  EXPECT_EQ(StateDictKeys(*net), Sorted(expected));
}

TEST(MlpTest, BookInitialization) {
  ManualSeed(0);
  auto net = Mlp();
  for (const auto& [name, p] : net->NamedParameters()) {
    const std::vector<float> v = p.data().ToVector();
    double sum = 0, sum_sq = 0;
    for (float f : v) {
      sum += f;
      sum_sq += static_cast<double>(f) * f;
    }
    if (name.find("bias") != std::string::npos) {
      EXPECT_EQ(sum_sq, 0.0) << name;
    } else {
      EXPECT_NEAR(std::sqrt(sum_sq / v.size() - (sum / v.size()) *
                                                    (sum / v.size())),
                  0.01, 0.002)
          << name;
    }
  }
}

TEST(MlpTest, LossGoesDown) {
  ManualSeed(0);
  auto net = Mlp();
  const auto [before, after] = LossBeforeAfter(*net, 0.1f, 10);
  EXPECT_LT(after, before) << "loss " << before << " -> " << after;
}

TEST(MlpDropoutTest, OutputShape) {
  auto net = MlpDropout();
  EXPECT_EQ((*net)(autograd::Variable(Normal({3, 1, 28, 28}, 0, 1))).shape(),
            Shape({3, 10}));
  net->Eval();
  EXPECT_EQ((*net)(autograd::Variable(Normal({3, 1, 28, 28}, 0, 1))).shape(),
            Shape({3, 10}));
  EXPECT_EQ((*MlpDropout(14))(autograd::Variable(Normal({2, 1, 14, 14}, 0, 1)))
                .shape(),
            Shape({2, 10}));
}

TEST(MlpDropoutTest, ParameterCountMatchesPyTorch) {
  // (784 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10): PyTorch's numel
  // sum for the twin mlp_dropout(28).
  EXPECT_EQ(MlpDropout()->NumParameters(), 269322);
  EXPECT_EQ(MlpDropout(14)->NumParameters(), 118794);  // twin mlp_dropout(14)
}

TEST(MlpDropoutTest, StateDictKeysMatchPyTorch) {
  // list(mlp_dropout(28).state_dict()) of the PyTorch twin.
  const std::vector<std::string> expected = {
      "1.weight", "1.bias", "4.weight", "4.bias", "7.weight", "7.bias"};
  auto net = MlpDropout();
  EXPECT_EQ(ParameterNames(*net), expected);
  EXPECT_EQ(StateDictKeys(*net), Sorted(expected));
}

TEST(MlpDropoutTest, EvalIsDeterministic) {
  auto net = MlpDropout();
  net->Eval();
  autograd::NoGradGuard no_grad;
  const Tensor x = Normal({4, 1, 28, 28}, 0, 1);
  EXPECT_EQ((*net)(autograd::Variable(x)).data().ToVector(),
            (*net)(autograd::Variable(x)).data().ToVector());
}

TEST(MlpDropoutTest, LossGoesDown) {
  ManualSeed(0);
  auto net = MlpDropout();
  const auto [before, after] = LossBeforeAfter(*net, 0.5f, 10);
  EXPECT_LT(after, before) << "loss " << before << " -> " << after;
}

TEST(MlpSpecTest, MakeChecksInputSize) {
  for (const ModelSpec& spec : {MlpSpec(), MlpDropoutSpec()}) {
    auto net = spec.make(28);
    ASSERT_TRUE(net.ok()) << net.status();
    EXPECT_EQ((*net)->NumParameters(),
              spec.name == "mlp" ? 203530 : 269322);
    ASSERT_TRUE(spec.make(14).ok());
    for (int64_t bad : {0, -1, 513}) ExpectRejectsInputSize(spec, bad, "MLP");
  }
}

}  // namespace
}  // namespace dive::models
