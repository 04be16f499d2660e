#include "models/densenet/densenet.h"

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

// `state_dict()` of the PyTorch twin, `densenet()` in models/pytorch_twins.py
// (`python3 models/pytorch_twins.py params densenet`), as "key shape" in
// PyTorch's order: 84 parameters and 21 x 3 BatchNorm buffers.
constexpr char kTwinStateDict[] = R"(
0.0.weight [64, 1, 7, 7]
0.0.bias [64]
0.1.weight [64]
0.1.bias [64]
0.1.running_mean [64]
0.1.running_var [64]
0.1.num_batches_tracked []
1.net.0.0.weight [64]
1.net.0.0.bias [64]
1.net.0.0.running_mean [64]
1.net.0.0.running_var [64]
1.net.0.0.num_batches_tracked []
1.net.0.2.weight [32, 64, 3, 3]
1.net.0.2.bias [32]
1.net.1.0.weight [96]
1.net.1.0.bias [96]
1.net.1.0.running_mean [96]
1.net.1.0.running_var [96]
1.net.1.0.num_batches_tracked []
1.net.1.2.weight [32, 96, 3, 3]
1.net.1.2.bias [32]
1.net.2.0.weight [128]
1.net.2.0.bias [128]
1.net.2.0.running_mean [128]
1.net.2.0.running_var [128]
1.net.2.0.num_batches_tracked []
1.net.2.2.weight [32, 128, 3, 3]
1.net.2.2.bias [32]
1.net.3.0.weight [160]
1.net.3.0.bias [160]
1.net.3.0.running_mean [160]
1.net.3.0.running_var [160]
1.net.3.0.num_batches_tracked []
1.net.3.2.weight [32, 160, 3, 3]
1.net.3.2.bias [32]
2.0.weight [192]
2.0.bias [192]
2.0.running_mean [192]
2.0.running_var [192]
2.0.num_batches_tracked []
2.2.weight [96, 192, 1, 1]
2.2.bias [96]
3.net.0.0.weight [96]
3.net.0.0.bias [96]
3.net.0.0.running_mean [96]
3.net.0.0.running_var [96]
3.net.0.0.num_batches_tracked []
3.net.0.2.weight [32, 96, 3, 3]
3.net.0.2.bias [32]
3.net.1.0.weight [128]
3.net.1.0.bias [128]
3.net.1.0.running_mean [128]
3.net.1.0.running_var [128]
3.net.1.0.num_batches_tracked []
3.net.1.2.weight [32, 128, 3, 3]
3.net.1.2.bias [32]
3.net.2.0.weight [160]
3.net.2.0.bias [160]
3.net.2.0.running_mean [160]
3.net.2.0.running_var [160]
3.net.2.0.num_batches_tracked []
3.net.2.2.weight [32, 160, 3, 3]
3.net.2.2.bias [32]
3.net.3.0.weight [192]
3.net.3.0.bias [192]
3.net.3.0.running_mean [192]
3.net.3.0.running_var [192]
3.net.3.0.num_batches_tracked []
3.net.3.2.weight [32, 192, 3, 3]
3.net.3.2.bias [32]
4.0.weight [224]
4.0.bias [224]
4.0.running_mean [224]
4.0.running_var [224]
4.0.num_batches_tracked []
4.2.weight [112, 224, 1, 1]
4.2.bias [112]
5.net.0.0.weight [112]
5.net.0.0.bias [112]
5.net.0.0.running_mean [112]
5.net.0.0.running_var [112]
5.net.0.0.num_batches_tracked []
5.net.0.2.weight [32, 112, 3, 3]
5.net.0.2.bias [32]
5.net.1.0.weight [144]
5.net.1.0.bias [144]
5.net.1.0.running_mean [144]
5.net.1.0.running_var [144]
5.net.1.0.num_batches_tracked []
5.net.1.2.weight [32, 144, 3, 3]
5.net.1.2.bias [32]
5.net.2.0.weight [176]
5.net.2.0.bias [176]
5.net.2.0.running_mean [176]
5.net.2.0.running_var [176]
5.net.2.0.num_batches_tracked []
5.net.2.2.weight [32, 176, 3, 3]
5.net.2.2.bias [32]
5.net.3.0.weight [208]
5.net.3.0.bias [208]
5.net.3.0.running_mean [208]
5.net.3.0.running_var [208]
5.net.3.0.num_batches_tracked []
5.net.3.2.weight [32, 208, 3, 3]
5.net.3.2.bias [32]
6.0.weight [240]
6.0.bias [240]
6.0.running_mean [240]
6.0.running_var [240]
6.0.num_batches_tracked []
6.2.weight [120, 240, 1, 1]
6.2.bias [120]
7.net.0.0.weight [120]
7.net.0.0.bias [120]
7.net.0.0.running_mean [120]
7.net.0.0.running_var [120]
7.net.0.0.num_batches_tracked []
7.net.0.2.weight [32, 120, 3, 3]
7.net.0.2.bias [32]
7.net.1.0.weight [152]
7.net.1.0.bias [152]
7.net.1.0.running_mean [152]
7.net.1.0.running_var [152]
7.net.1.0.num_batches_tracked []
7.net.1.2.weight [32, 152, 3, 3]
7.net.1.2.bias [32]
7.net.2.0.weight [184]
7.net.2.0.bias [184]
7.net.2.0.running_mean [184]
7.net.2.0.running_var [184]
7.net.2.0.num_batches_tracked []
7.net.2.2.weight [32, 184, 3, 3]
7.net.2.2.bias [32]
7.net.3.0.weight [216]
7.net.3.0.bias [216]
7.net.3.0.running_mean [216]
7.net.3.0.running_var [216]
7.net.3.0.num_batches_tracked []
7.net.3.2.weight [32, 216, 3, 3]
7.net.3.2.bias [32]
8.weight [248]
8.bias [248]
8.running_mean [248]
8.running_var [248]
8.num_batches_tracked []
12.weight [10, 248]
12.bias [10]
)";
// sum(p.numel() for p in densenet().parameters()).
constexpr int64_t kTwinNumParameters = 758226;

std::vector<std::string> Describe(const nn::Module& m) {
  std::vector<std::string> lines;
  for (const auto& [name, child] : m.children()) {
    lines.push_back(name + " " + child->Describe());
  }
  return lines;
}

TEST(DenseNetTest, OutputShapeAtBookAndMinimumSizes) {
  ManualSeed(0);
  for (int64_t size : {int64_t{96}, kDenseNetMinInputSize}) {
    std::shared_ptr<nn::Module> net = MakeOrDie(DenseNetSpec(), size);
    net->Eval();
    autograd::NoGradGuard no_grad;
    const autograd::Variable y =
        (*net)(autograd::Variable(Normal({2, 1, size, size}, 0, 1)));
    EXPECT_EQ(y.shape(), Shape({2, 10})) << "input size " << size;
  }
}

TEST(DenseNetTest, RejectsInputsTooSmallForTheTransitions) {
  for (int64_t size : {int64_t{0}, kDenseNetMinInputSize - 1, int64_t{513}}) {
    ExpectRejectsInputSize(DenseNetSpec(), size, "DenseNet");
  }
}

TEST(DenseNetTest, ParameterCountMatchesPyTorchTwin) {
  EXPECT_EQ(DenseNet()->NumParameters(), kTwinNumParameters);
}

TEST(DenseNetTest, StateDictMatchesPyTorchTwin) {
  const KeyShapes twin = ParseKeyShapes(kTwinStateDict);
  ASSERT_EQ(twin.size(), 147u);
  const std::shared_ptr<nn::Sequential> net = DenseNet();
  ExpectStateDictMatchesTwin(*net, twin);
  EXPECT_EQ(net->NamedParameters().size(), 84u);
  EXPECT_EQ(net->NamedBuffers().size(), 63u);
}

// 64 -> 192 -> 96 -> 224 -> 112 -> 240 -> 120 -> 248 channels.
TEST(DenseNetTest, BlocksMirrorTheBook) {
  const std::shared_ptr<nn::Sequential> net = DenseNet();
  EXPECT_THAT(Describe(*net),
              ElementsAreArray({"0 Sequential",
                                "1 DenseBlock(4, 64, 32)",
                                "2 Sequential",
                                "3 DenseBlock(4, 96, 32)",
                                "4 Sequential",
                                "5 DenseBlock(4, 112, 32)",
                                "6 Sequential",
                                "7 DenseBlock(4, 120, 32)",
                                "8 BatchNorm2d(248, eps=1e-05, momentum=0.1)",
                                "9 ReLU",
                                "10 AdaptiveAvgPool2d(1x1)",
                                "11 Flatten(start=1, end=-1)",
                                "12 Linear(248, 10)"}));
  EXPECT_THAT(Describe(*net->at(2)),
              ElementsAreArray(
                  {"0 BatchNorm2d(192, eps=1e-05, momentum=0.1)", "1 ReLU",
                   "2 Conv2d(192, 96, kernel=1x1, stride=1, padding=0)",
                   "3 AvgPool2d(kernel=2x2, stride=2, padding=0)"}));
}

TEST(DenseBlockTest, ChildrenAreTheBooksAttributes) {
  const DenseBlock blk(2, 3, 10);
  EXPECT_THAT(Describe(blk), ElementsAreArray({"net Sequential"}));
  const nn::Module& net = *blk.children()[0].second;
  EXPECT_THAT(Describe(net), ElementsAreArray({"0 Sequential", "1 Sequential"}));
  EXPECT_THAT(Describe(*net.children()[1].second),
              ElementsAreArray(
                  {"0 BatchNorm2d(13, eps=1e-05, momentum=0.1)", "1 ReLU",
                   "2 Conv2d(13, 10, kernel=3x3, stride=1, padding=1)"}));
  EXPECT_EQ(blk.out_channels(), 23);
}

// The book's example: DenseBlock(2, 3, 10) on [4, 3, 8, 8] gives 23
// channels, the input first, then each conv_block's output.
TEST(DenseBlockTest, ConcatenatesInputAndOutputs) {
  ManualSeed(1);
  DenseBlock blk(2, 3, 10);
  blk.Eval();  // fixed statistics, so the blocks can be rerun below
  const autograd::Variable x(Normal({4, 3, 8, 8}, 0, 1));
  const autograd::Variable y = blk(x);
  ASSERT_EQ(y.shape(), Shape({4, 23, 8, 8}));
  EXPECT_EQ(y.data().Slice(1, 0, 3).ToVector(), x.data().ToVector());
  const nn::Module& net = *blk.children()[0].second;
  nn::Module& first = *net.children()[0].second;
  EXPECT_EQ(y.data().Slice(1, 3, 13).ToVector(), first(x).data().ToVector());
}

// Gradients of a whole dense block (training-mode BatchNorm, batch
// statistics) with respect to the input and all parameters. A small step and
// BatchNorm betas of 1 keep most ReLU inputs clear of the kink at 0, which a
// finite-difference step must not cross (over 40 seeds, 39 pass this way;
// 33 with the default betas).
TEST(DenseBlockTest, GradCheck) {
  ManualSeed(2);
  DenseBlock blk(2, 2, 2);
  for (auto& [name, p] : blk.NamedParameters()) {
    // net.<i>.0 is conv_block i's BatchNorm2d.
    if (name == "net.0.0.bias" || name == "net.1.0.bias") {
      nn::ConstantInit(p.data(), 1.0f);
    }
  }
  autograd::GradCheckOptions options;
  options.eps = 1e-3;
  const absl::Status s =
      nn::GradCheckModule(blk, DistinctValues({2, 2, 3, 3}, 0.05f), options);
  EXPECT_TRUE(s.ok()) << s;
}

TEST(TransitionBlockTest, HalvesTheResolution) {
  ManualSeed(3);
  auto blk = TransitionBlock(23, 10);
  EXPECT_EQ((*blk)(autograd::Variable(Normal({4, 23, 8, 8}, 0, 1))).shape(),
            Shape({4, 10, 4, 4}));
}

// Linear and Conv2d weights are Xavier-uniform, U(-b, b) with
// b = sqrt(6 / (fan_in + fan_out)).
TEST(DenseNetTest, WeightsAreXavierUniform) {
  ManualSeed(4);
  const std::shared_ptr<nn::Sequential> net = DenseNet();
  auto fc = std::dynamic_pointer_cast<nn::Linear>(net->at(12));
  ASSERT_NE(fc, nullptr);
  // PyTorch's default bound would be 1 / sqrt(248) = 0.064.
  ExpectUniformBound(fc->weight().data(), std::sqrt(6.0f / (248.0f + 10.0f)));
}

TEST(DenseNetTest, SgdStepsReduceTheLossOnAFixedBatch) {
  ManualSeed(5);
  constexpr int64_t kSize = 32;
  const std::shared_ptr<nn::Module> net = MakeOrDie(DenseNetSpec(), kSize);
  const auto [x, y] = RandomBatch(4, kSize);
  ExpectLossDecreases(SgdStepLosses(*net, x, y, 0.1f, 5));
}

}  // namespace
}  // namespace dive::models
