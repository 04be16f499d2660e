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
#include "nn/bf16_activations.h"
#include "nn/init.h"
#include "nn/testing.h"
#include "tensor/gemm.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

using ::testing::ElementsAreArray;

std::vector<std::string> Describe(const nn::Module& m) {
  std::vector<std::string> lines;
  for (const auto& [name, child] : m.children()) {
    lines.push_back(name + " " + child->Describe());
  }
  return lines;
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
  EXPECT_THAT(Describe(net),
              ElementsAreArray({"0 Sequential", "1 Sequential"}));
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

// In bf16 training with kAutocast the concatenations are stored in
// bf16 (nn/bf16_activations.h); otherwise, and in evaluation, in float32.
// The bf16 ones hold the float32-activation block's values within bf16's
// rounding (each later batch norm reads rounded inputs).
TEST(DenseBlockTest, StoresConcatenationsInBf16WhereChosen) {
  ManualSeed(3);
  DenseBlock blk(2, 3, 10);
  const autograd::Variable x(Normal({4, 3, 8, 8}, 0, 1));
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  const auto run = [&](nn::Bf16Activations choice) {
    const nn::ScopedBf16Activations stored(choice);
    return blk(x).data();
  };
  const Tensor exact = run(nn::Bf16Activations::kWhereExact);
  const Tensor stored = run(nn::Bf16Activations::kAutocast);
  EXPECT_EQ(exact.dtype(), DType::kFloat32);
  ASSERT_EQ(stored.dtype(), DType::kBfloat16);
  const std::vector<float> e = exact.ToVector(), b = stored.ToVector();
  for (size_t i = 0; i < e.size(); ++i) {
    ASSERT_NEAR(b[i], e[i], 0.02f * (1.0f + std::abs(e[i]))) << i;
  }
  blk.Eval();
  EXPECT_EQ(run(nn::Bf16Activations::kAutocast).dtype(),
            DType::kFloat32);
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

}  // namespace
}  // namespace dive::models
