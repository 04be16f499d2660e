#include "models/nin/nin.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/testing.h"
#include "nn/conv2d.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

using ::testing::ElementsAreArray;

// `state_dict()` of the PyTorch twin, `nin()` in models/pytorch_twins.py
// (printed as "key shape", in PyTorch's order). NiN has no buffers.
constexpr char kTwinStateDict[] = R"(
0.0.weight [96, 1, 11, 11]
0.0.bias [96]
0.2.weight [96, 96, 1, 1]
0.2.bias [96]
0.4.weight [96, 96, 1, 1]
0.4.bias [96]
2.0.weight [256, 96, 5, 5]
2.0.bias [256]
2.2.weight [256, 256, 1, 1]
2.2.bias [256]
2.4.weight [256, 256, 1, 1]
2.4.bias [256]
4.0.weight [384, 256, 3, 3]
4.0.bias [384]
4.2.weight [384, 384, 1, 1]
4.2.bias [384]
4.4.weight [384, 384, 1, 1]
4.4.bias [384]
7.0.weight [10, 384, 3, 3]
7.0.bias [10]
7.2.weight [10, 10, 1, 1]
7.2.bias [10]
7.4.weight [10, 10, 1, 1]
7.4.bias [10]
)";
// sum(p.numel() for p in nin().parameters()).
constexpr int64_t kTwinNumParameters = 1992166;

TEST(NinTest, OutputShapeAtBookAndMinimumSizes) {
  ManualSeed(0);
  for (int64_t size : {int64_t{224}, kNinMinInputSize}) {
    std::shared_ptr<nn::Module> net = MakeOrDie(NinSpec(), size);
    net->Eval();
    autograd::NoGradGuard no_grad;
    const autograd::Variable y =
        (*net)(autograd::Variable(Normal({2, 1, size, size}, 0, 1)));
    EXPECT_EQ(y.shape(), Shape({2, 10})) << "input size " << size;
  }
}

TEST(NinTest, RejectsInputsTooSmallForThePooling) {
  for (int64_t size : {int64_t{0}, kNinMinInputSize - 1, int64_t{513}}) {
    ExpectRejectsInputSize(NinSpec(), size, "NiN");
  }
}

TEST(NinTest, ParameterCountMatchesPyTorchTwin) {
  EXPECT_EQ(NiN()->NumParameters(), kTwinNumParameters);
}

TEST(NinTest, StateDictMatchesPyTorchTwin) {
  const KeyShapes twin = ParseKeyShapes(kTwinStateDict);
  const std::shared_ptr<nn::Sequential> net = NiN();
  ExpectStateDictMatchesTwin(*net, twin);
}

TEST(NinTest, BlocksMirrorTheBook) {
  const std::shared_ptr<nn::Sequential> net = NiN();
  ASSERT_EQ(net->size(), 10u);
  const std::vector<std::string> expected = {
      "Sequential",
      "MaxPool2d(kernel=3x3, stride=2, padding=0)",
      "Sequential",
      "MaxPool2d(kernel=3x3, stride=2, padding=0)",
      "Sequential",
      "MaxPool2d(kernel=3x3, stride=2, padding=0)",
      "Dropout(p=0.5)",
      "Sequential",
      "AdaptiveAvgPool2d(1x1)",
      "Flatten(start=1, end=-1)"};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(net->at(i)->Describe(), expected[i]) << i;
  }
  const std::shared_ptr<nn::Sequential> nin_block = NinBlock(96, 256, 5, 1, 2);
  std::vector<std::string> block;
  for (const auto& [name, m] : nin_block->children()) {
    block.push_back(name + " " + m->Describe());
  }
  EXPECT_THAT(block,
              ElementsAreArray(
                  {"0 Conv2d(96, 256, kernel=5x5, stride=1, padding=2)",
                   "1 ReLU",
                   "2 Conv2d(256, 256, kernel=1x1, stride=1, padding=0)",
                   "3 ReLU",
                   "4 Conv2d(256, 256, kernel=1x1, stride=1, padding=0)",
                   "5 ReLU"}));
}

// Conv weights are Xavier-uniform, U(-b, b) with b = sqrt(6 / (fan_in +
// fan_out)); biases keep PyTorch's default U(-1/sqrt(fan_in), ...).
TEST(NinTest, ConvWeightsAreXavierUniform) {
  ManualSeed(1);
  const std::shared_ptr<nn::Sequential> net = NiN();
  auto first = std::dynamic_pointer_cast<nn::Conv2d>(
      std::dynamic_pointer_cast<nn::Sequential>(net->at(0))->at(0));
  ASSERT_NE(first, nullptr);
  // fan_in = 1 * 11 * 11, fan_out = 96 * 11 * 11.
  const float xavier = std::sqrt(6.0f / (121.0f + 96.0f * 121.0f));
  ExpectUniformBound(first->weight().data(), xavier);
  const float max_bias = MaxAbs(first->bias().data());
  EXPECT_LE(max_bias, 1.0f / 11.0f);
  EXPECT_GT(max_bias, xavier);  // not Xavier-initialized
}

TEST(NinTest, SgdStepsReduceTheLossOnAFixedBatch) {
  ManualSeed(2);
  const std::shared_ptr<nn::Module> net =
      MakeOrDie(NinSpec(), kNinMinInputSize);
  const auto [x, y] = RandomBatch(4, kNinMinInputSize);
  ExpectLossDecreases(SgdStepLosses(*net, x, y, 0.1f, 8));
}

}  // namespace
}  // namespace dive::models
