#include "models/googlenet/googlenet.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "autograd/functions.h"
#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/testing.h"
#include "nn/init.h"
#include "nn/linear.h"
#include "nn/testing.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

using ::testing::ElementsAreArray;

// `state_dict()` of the PyTorch twin, `googlenet()` in
// models/pytorch_twins.py (`python3 models/pytorch_twins.py params
// googlenet`), as "key shape" in PyTorch's order. GoogLeNet has no buffers.
constexpr char kTwinStateDict[] = R"(
0.0.weight [64, 1, 7, 7]
0.0.bias [64]
1.0.weight [64, 64, 1, 1]
1.0.bias [64]
1.2.weight [192, 64, 3, 3]
1.2.bias [192]
2.0.p1_1.weight [64, 192, 1, 1]
2.0.p1_1.bias [64]
2.0.p2_1.weight [96, 192, 1, 1]
2.0.p2_1.bias [96]
2.0.p2_2.weight [128, 96, 3, 3]
2.0.p2_2.bias [128]
2.0.p3_1.weight [16, 192, 1, 1]
2.0.p3_1.bias [16]
2.0.p3_2.weight [32, 16, 5, 5]
2.0.p3_2.bias [32]
2.0.p4_2.weight [32, 192, 1, 1]
2.0.p4_2.bias [32]
2.1.p1_1.weight [128, 256, 1, 1]
2.1.p1_1.bias [128]
2.1.p2_1.weight [128, 256, 1, 1]
2.1.p2_1.bias [128]
2.1.p2_2.weight [192, 128, 3, 3]
2.1.p2_2.bias [192]
2.1.p3_1.weight [32, 256, 1, 1]
2.1.p3_1.bias [32]
2.1.p3_2.weight [96, 32, 5, 5]
2.1.p3_2.bias [96]
2.1.p4_2.weight [64, 256, 1, 1]
2.1.p4_2.bias [64]
3.0.p1_1.weight [192, 480, 1, 1]
3.0.p1_1.bias [192]
3.0.p2_1.weight [96, 480, 1, 1]
3.0.p2_1.bias [96]
3.0.p2_2.weight [208, 96, 3, 3]
3.0.p2_2.bias [208]
3.0.p3_1.weight [16, 480, 1, 1]
3.0.p3_1.bias [16]
3.0.p3_2.weight [48, 16, 5, 5]
3.0.p3_2.bias [48]
3.0.p4_2.weight [64, 480, 1, 1]
3.0.p4_2.bias [64]
3.1.p1_1.weight [160, 512, 1, 1]
3.1.p1_1.bias [160]
3.1.p2_1.weight [112, 512, 1, 1]
3.1.p2_1.bias [112]
3.1.p2_2.weight [224, 112, 3, 3]
3.1.p2_2.bias [224]
3.1.p3_1.weight [24, 512, 1, 1]
3.1.p3_1.bias [24]
3.1.p3_2.weight [64, 24, 5, 5]
3.1.p3_2.bias [64]
3.1.p4_2.weight [64, 512, 1, 1]
3.1.p4_2.bias [64]
3.2.p1_1.weight [128, 512, 1, 1]
3.2.p1_1.bias [128]
3.2.p2_1.weight [128, 512, 1, 1]
3.2.p2_1.bias [128]
3.2.p2_2.weight [256, 128, 3, 3]
3.2.p2_2.bias [256]
3.2.p3_1.weight [24, 512, 1, 1]
3.2.p3_1.bias [24]
3.2.p3_2.weight [64, 24, 5, 5]
3.2.p3_2.bias [64]
3.2.p4_2.weight [64, 512, 1, 1]
3.2.p4_2.bias [64]
3.3.p1_1.weight [112, 512, 1, 1]
3.3.p1_1.bias [112]
3.3.p2_1.weight [144, 512, 1, 1]
3.3.p2_1.bias [144]
3.3.p2_2.weight [288, 144, 3, 3]
3.3.p2_2.bias [288]
3.3.p3_1.weight [32, 512, 1, 1]
3.3.p3_1.bias [32]
3.3.p3_2.weight [64, 32, 5, 5]
3.3.p3_2.bias [64]
3.3.p4_2.weight [64, 512, 1, 1]
3.3.p4_2.bias [64]
3.4.p1_1.weight [256, 528, 1, 1]
3.4.p1_1.bias [256]
3.4.p2_1.weight [160, 528, 1, 1]
3.4.p2_1.bias [160]
3.4.p2_2.weight [320, 160, 3, 3]
3.4.p2_2.bias [320]
3.4.p3_1.weight [32, 528, 1, 1]
3.4.p3_1.bias [32]
3.4.p3_2.weight [128, 32, 5, 5]
3.4.p3_2.bias [128]
3.4.p4_2.weight [128, 528, 1, 1]
3.4.p4_2.bias [128]
4.0.p1_1.weight [256, 832, 1, 1]
4.0.p1_1.bias [256]
4.0.p2_1.weight [160, 832, 1, 1]
4.0.p2_1.bias [160]
4.0.p2_2.weight [320, 160, 3, 3]
4.0.p2_2.bias [320]
4.0.p3_1.weight [32, 832, 1, 1]
4.0.p3_1.bias [32]
4.0.p3_2.weight [128, 32, 5, 5]
4.0.p3_2.bias [128]
4.0.p4_2.weight [128, 832, 1, 1]
4.0.p4_2.bias [128]
4.1.p1_1.weight [384, 832, 1, 1]
4.1.p1_1.bias [384]
4.1.p2_1.weight [192, 832, 1, 1]
4.1.p2_1.bias [192]
4.1.p2_2.weight [384, 192, 3, 3]
4.1.p2_2.bias [384]
4.1.p3_1.weight [48, 832, 1, 1]
4.1.p3_1.bias [48]
4.1.p3_2.weight [128, 48, 5, 5]
4.1.p3_2.bias [128]
4.1.p4_2.weight [128, 832, 1, 1]
4.1.p4_2.bias [128]
5.weight [10, 1024]
5.bias [10]
)";
// sum(p.numel() for p in googlenet().parameters()).
constexpr int64_t kTwinNumParameters = 5977530;

TEST(GoogLeNetTest, OutputShapeAtBookAndMinimumSizes) {
  ManualSeed(0);
  for (int64_t size : {int64_t{96}, int64_t{7}, kGoogLeNetMinInputSize}) {
    std::shared_ptr<nn::Module> net = MakeOrDie(GoogLeNetSpec(), size);
    net->Eval();
    autograd::NoGradGuard no_grad;
    const autograd::Variable y =
        (*net)(autograd::Variable(Normal({2, 1, size, size}, 0, 1)));
    EXPECT_EQ(y.shape(), Shape({2, 10})) << "input size " << size;
  }
}

TEST(GoogLeNetTest, RejectsUnsupportedSizes) {
  for (int64_t size : {int64_t{0}, int64_t{-3}, int64_t{513}}) {
    ExpectRejectsInputSize(GoogLeNetSpec(), size, "GoogLeNet");
  }
}

TEST(GoogLeNetTest, ParameterCountMatchesPyTorchTwin) {
  EXPECT_EQ(GoogLeNet()->NumParameters(), kTwinNumParameters);
}

TEST(GoogLeNetTest, StateDictMatchesPyTorchTwin) {
  const KeyShapes twin = ParseKeyShapes(kTwinStateDict);
  ASSERT_EQ(twin.size(), 116u);
  const std::shared_ptr<nn::Sequential> net = GoogLeNet();
  ExpectStateDictMatchesTwin(*net, twin);
}

TEST(GoogLeNetTest, StagesMirrorTheBook) {
  const std::shared_ptr<nn::Sequential> net = GoogLeNet();
  ASSERT_EQ(net->size(), 6u);
  std::vector<std::string> b3, b5;
  for (const auto& [name, m] : net->at(2)->children()) {
    b3.push_back(m->Describe());
  }
  for (const auto& [name, m] : net->at(4)->children()) {
    b5.push_back(m->Describe());
  }
  EXPECT_THAT(b3, ElementsAreArray(
                      {"Inception(192, 64, (96, 128), (16, 32), 32)",
                       "Inception(256, 128, (128, 192), (32, 96), 64)",
                       "MaxPool2d(kernel=3x3, stride=2, padding=1)"}));
  EXPECT_THAT(b5, ElementsAreArray(
                      {"Inception(832, 256, (160, 320), (32, 128), 128)",
                       "Inception(832, 384, (192, 384), (48, 128), 128)",
                       "AdaptiveAvgPool2d(1x1)", "Flatten(start=1, end=-1)"}));
  EXPECT_EQ(net->at(3)->children().size(), 6u);  // 5 Inceptions + pooling
  EXPECT_EQ(net->at(5)->Describe(), "Linear(1024, 10)");
}

TEST(InceptionTest, ChildrenAreTheBooksAttributes) {
  Inception block(192, 64, {96, 128}, {16, 32}, 32);
  std::vector<std::string> children;
  for (const auto& [name, m] : block.children()) {
    children.push_back(name + " " + m->Describe());
  }
  EXPECT_THAT(children,
              ElementsAreArray(
                  {"p1_1 Conv2d(192, 64, kernel=1x1, stride=1, padding=0)",
                   "p2_1 Conv2d(192, 96, kernel=1x1, stride=1, padding=0)",
                   "p2_2 Conv2d(96, 128, kernel=3x3, stride=1, padding=1)",
                   "p3_1 Conv2d(192, 16, kernel=1x1, stride=1, padding=0)",
                   "p3_2 Conv2d(16, 32, kernel=5x5, stride=1, padding=2)",
                   "p4_1 MaxPool2d(kernel=3x3, stride=1, padding=1)",
                   "p4_2 Conv2d(192, 32, kernel=1x1, stride=1, padding=0)"}));
  EXPECT_EQ(block.out_channels(), 256);
}

TEST(InceptionTest, ConcatenatesThePathsInOrder) {
  ManualSeed(3);
  Inception block(3, 2, {2, 3}, {1, 2}, 4);
  const autograd::Variable x(Normal({2, 3, 5, 5}, 0, 1));
  const autograd::Variable y = block(x);
  ASSERT_EQ(y.shape(), Shape({2, 11, 5, 5}));
  // Channels 0-1 are path 1, relu(p1_1(x)); the last 4 are path 4.
  auto& p1_1 = *block.children()[0].second;
  auto& p4_1 = *block.children()[5].second;
  auto& p4_2 = *block.children()[6].second;
  const std::vector<float> p1 = Relu(p1_1(x)).data().ToVector();
  const std::vector<float> p4 = Relu(p4_2(p4_1(x))).data().ToVector();
  const std::vector<float> head = y.data().Slice(1, 0, 2).ToVector();
  const std::vector<float> tail = y.data().Slice(1, 7, 11).ToVector();
  EXPECT_EQ(head, p1);
  EXPECT_EQ(tail, p4);
}

// Finite differences are only meaningful away from the kinks of the six
// ReLUs and the ties of the max pooling, so the check uses
//   * input values that are distinct multiples of 0.01 (no pooling window has
//     a near tie at a step of 1e-3),
//   * small inputs and biases of 0.5, which keep most pre-activations clear
//     of 0 (over 50 seeds, 49 pass; with PyTorch's default biases about 40%
//     hit a kink somewhere).
TEST(InceptionTest, GradCheck) {
  ManualSeed(7);
  Inception block(2, 1, {2, 2}, {1, 2}, 1);
  for (auto& [name, p] : block.NamedParameters()) {
    if (p.rank() == 1) nn::ConstantInit(p.data(), 0.5f);  // the biases
  }
  autograd::GradCheckOptions options;
  options.eps = 1e-3;
  const absl::Status s = nn::GradCheckModule(
      block, DistinctValues({2, 2, 4, 4}, 0.01f), options);
  EXPECT_TRUE(s.ok()) << s;
}

// Linear and Conv2d weights are Xavier-uniform, U(-b, b) with
// b = sqrt(6 / (fan_in + fan_out)).
TEST(GoogLeNetTest, WeightsAreXavierUniform) {
  ManualSeed(5);
  const std::shared_ptr<nn::Sequential> net = GoogLeNet();
  auto fc = std::dynamic_pointer_cast<nn::Linear>(net->at(5));
  ASSERT_NE(fc, nullptr);
  // PyTorch's default bound would be 1 / sqrt(1024) = 0.031.
  ExpectUniformBound(fc->weight().data(), std::sqrt(6.0f / (1024.0f + 10.0f)));
}

TEST(GoogLeNetTest, SgdStepsReduceTheLossOnAFixedBatch) {
  ManualSeed(6);
  constexpr int64_t kSize = 32;
  const std::shared_ptr<nn::Module> net = MakeOrDie(GoogLeNetSpec(), kSize);
  const auto [x, y] = RandomBatch(4, kSize);
  ExpectLossDecreases(SgdStepLosses(*net, x, y, 0.1f, 6));
}

}  // namespace
}  // namespace dive::models
