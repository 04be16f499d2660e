#include "models/alexnet/alexnet.h"

#include <string>
#include <vector>

#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "models/testing.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

TEST(AlexNetTest, FeatureSide) {
  EXPECT_EQ(AlexNetFeatureSide(224), 5);  // 256 * 5 * 5 = 6400, the book's
  EXPECT_EQ(AlexNetFeatureSide(96), 1);
  EXPECT_EQ(AlexNetFeatureSide(kAlexNetMinInputSize), 1);
  EXPECT_LE(AlexNetFeatureSide(kAlexNetMinInputSize - 1), 0);
}

TEST(AlexNetTest, OutputShapeAtBookSize) {
  auto net = AlexNet();
  net->Eval();
  autograd::NoGradGuard no_grad;
  EXPECT_EQ((*net)(autograd::Variable(Normal({1, 1, 224, 224}, 0, 1))).shape(),
            Shape({1, 10}));
}

TEST(AlexNetTest, OutputShapeAtSmallSizes) {
  EXPECT_EQ(
      (*AlexNet(96))(autograd::Variable(Normal({2, 1, 96, 96}, 0, 1))).shape(),
      Shape({2, 10}));
  EXPECT_EQ((*AlexNet(kAlexNetMinInputSize))(
                autograd::Variable(Normal({2, 1, 65, 65}, 0, 1)))
                .shape(),
            Shape({2, 10}));
}

TEST(AlexNetTest, ParameterCountMatchesPyTorch) {
  // Convs 1*96*121 + 96*256*25 + 256*384*9 + 384*384*9 + 384*256*9 (+ biases
  // 96 + 256 + 384 + 384 + 256), linears 6400*4096 + 4096*4096 + 4096*10
  // (+ 4096 + 4096 + 10): PyTorch's numel sum for the twin alexnet(224) in
  // models/pytorch_twins.py.
  EXPECT_EQ(AlexNet(224)->NumParameters(), 46764746);
  // 256*1*1 features at 65..96 (twins alexnet(65), alexnet(96)).
  EXPECT_EQ(AlexNet(96)->NumParameters(), 21598922);
  EXPECT_EQ(AlexNet(65)->NumParameters(), 21598922);
}

TEST(AlexNetTest, StateDictKeysMatchPyTorch) {
  // list(alexnet(224).state_dict()) of the PyTorch twin, in its order.
  const std::vector<std::string> expected = {
      "0.weight",  "0.bias",  "3.weight",  "3.bias",  "6.weight",  "6.bias",
      "8.weight",  "8.bias",  "10.weight", "10.bias", "14.weight", "14.bias",
      "17.weight", "17.bias", "20.weight", "20.bias"};
  auto net = AlexNet(96);
  EXPECT_EQ(ParameterNames(*net), expected);
  EXPECT_EQ(StateDictKeys(*net), Sorted(expected));
  EXPECT_EQ(net->StateDict().at("14.weight").shape(), Shape({4096, 256}));
}

TEST(AlexNetTest, LossGoesDown) {
  ManualSeed(0);
  auto net = AlexNet(kAlexNetMinInputSize);
  const auto [x, y] = RandomBatch(4, kAlexNetMinInputSize);
  // Loss in eval mode (no dropout) before and after a few training steps.
  const auto [before, after] =
      EvalLossBeforeAndAfterSgdSteps(*net, x, y, 0.01f, 5);
  EXPECT_LT(after, before) << "loss " << before << " -> " << after;
}

TEST(AlexNetSpecTest, MakeChecksInputSize) {
  const ModelSpec spec = AlexNetSpec();
  auto net = spec.make(kAlexNetMinInputSize);
  ASSERT_TRUE(net.ok()) << net.status();
  EXPECT_EQ((*net)->NumParameters(), 21598922);
  for (int64_t bad : {64, 28, 0, 513}) {
    ExpectRejectsInputSize(spec, bad, "AlexNet");
  }
}

}  // namespace
}  // namespace dive::models
