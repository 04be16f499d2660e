#include "models/resnet/resnet.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/testing.h"
#include "nn/init.h"
#include "nn/sequential.h"
#include "nn/testing.h"
#include "tensor/conv.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/random.h"
#include "tensor/testing.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

using ::testing::ElementsAreArray;

std::vector<std::string> ChildNames(const nn::Module& m) {
  std::vector<std::string> names;
  for (const auto& [name, child] : m.children()) names.push_back(name);
  return names;
}

// In training mode a batch of 2 gives BatchNorm two values per channel even
// at 1x1.
TEST(ResNetTest, TrainsAtTheMinimumSize) {
  ManualSeed(1);
  std::shared_ptr<nn::Module> net =
      MakeOrDie(ResNetSpec(), kResNetMinInputSize);
  const autograd::Variable y =
      (*net)(autograd::Variable(Normal({2, 1, 1, 1}, 0, 1)));
  EXPECT_EQ(y.shape(), Shape({2, 10}));
}

TEST(ResNetTest, StagesMirrorTheBook) {
  const std::shared_ptr<nn::Sequential> net = ResNet18();
  ASSERT_EQ(net->size(), 8u);
  std::vector<std::string> stages;
  for (size_t i = 1; i <= 4; ++i) {
    for (const auto& [name, m] : net->at(i)->children()) {
      stages.push_back(absl::StrCat(i, ".", name, " ", m->Describe()));
    }
  }
  EXPECT_THAT(stages,
              ElementsAreArray(
                  {"1.0 Residual(64, 64, use_1x1conv=false, strides=1)",
                   "1.1 Residual(64, 64, use_1x1conv=false, strides=1)",
                   "2.0 Residual(64, 128, use_1x1conv=true, strides=2)",
                   "2.1 Residual(128, 128, use_1x1conv=false, strides=1)",
                   "3.0 Residual(128, 256, use_1x1conv=true, strides=2)",
                   "3.1 Residual(256, 256, use_1x1conv=false, strides=1)",
                   "4.0 Residual(256, 512, use_1x1conv=true, strides=2)",
                   "4.1 Residual(512, 512, use_1x1conv=false, strides=1)"}));
  EXPECT_EQ(net->at(5)->Describe(), "AdaptiveAvgPool2d(1x1)");
  EXPECT_EQ(net->at(7)->Describe(), "Linear(512, 10)");
}

TEST(ResidualTest, ChildrenAreTheBooksAttributes) {
  const Residual plain(3, 3);
  EXPECT_THAT(ChildNames(plain),
              ElementsAreArray({"conv1", "conv2", "bn1", "bn2"}));
  const Residual down(3, 6, /*use_1x1conv=*/true, /*strides=*/2);
  EXPECT_THAT(ChildNames(down),
              ElementsAreArray({"conv1", "conv2", "conv3", "bn1", "bn2"}));
  EXPECT_EQ(down.children()[2].second->Describe(),
            "Conv2d(3, 6, kernel=1x1, stride=2, padding=0)");
}

// The book's examples: the same shape without the 1x1 convolution, half the
// resolution and more channels with it.
TEST(ResidualTest, OutputShapes) {
  ManualSeed(2);
  const autograd::Variable x(Normal({4, 3, 6, 6}, 0, 1));
  Residual plain(3, 3);
  EXPECT_EQ(plain(x).shape(), Shape({4, 3, 6, 6}));
  Residual down(3, 6, /*use_1x1conv=*/true, /*strides=*/2);
  EXPECT_EQ(down(x).shape(), Shape({4, 6, 3, 3}));
}

// relu(bn2(conv2(relu(bn1(conv1(x))))) + x), from the children.
TEST(ResidualTest, AddsTheIdentityShortcut) {
  ManualSeed(3);
  Residual block(2, 2);
  const autograd::Variable x(Normal({2, 2, 4, 4}, 0, 1));
  auto child = [&block](int i) -> nn::Module& {
    return *block.children()[i].second;
  };
  const autograd::Variable body =
      child(3)(child(1)(Relu(child(2)(child(0)(x)))));
  const std::vector<float> expected = Relu(body + x).data().ToVector();
  const std::vector<float> actual = block(x).data().ToVector();
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], 1e-5) << i;
  }
}

// In evaluation without gradients, residual blocks in a Sequential (one
// downsampling with a 1x1 shortcut, one adding its input) run as one chain
// of convolutions on oneDNN where the CPU has AVX512-BF16, and a block on
// its own as its own chain: either way oneDNN's convolutions one by one,
// bit for bit. A hook on a block leaves it out of its Sequential's chain and
// is called.
TEST(ResidualTest, EvaluationRunsBlocksAsOneChain) {
  ManualSeed(6);
  nn::Sequential blocks({std::make_shared<Residual>(16, 32, true, 2),
                         std::make_shared<Residual>(32, 32)});
  const autograd::Variable x(Normal({4, 16, 16, 16}, 0, 1));
  blocks.Fuse();
  blocks(x);  // training: running statistics that are not 0 and 1
  blocks.Eval();
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  const auto one_by_one = [&](ConvLibrary library) {
    const ScopedConvLibrary use(library);
    return blocks(x).data().ToVector();  // gradients on: no chain
  };
  const std::vector<float> onednn = one_by_one(ConvLibrary::kOneDnn);
  const std::vector<float> measured = one_by_one(ConvLibrary::kAuto);
  const std::vector<float> expected =
      ActiveIsa() >= Isa::kAvx512Bf16 ? onednn : measured;
  const autograd::NoGradGuard no_grad;
  EXPECT_EQ(blocks(x).data().ToVector(), expected);
  int calls = 0;
  autograd::HookHandle hook = blocks.at(1)->RegisterForwardHook(
      [&calls](nn::Module&, const autograd::Variable&,
               const autograd::Variable&) {
        ++calls;
        return autograd::Variable();
      });
  EXPECT_EQ(blocks(x).data().ToVector(), expected);
  EXPECT_EQ(calls, 1);
}

// Gradients of the whole block (training-mode BatchNorm, batch statistics)
// with respect to the input and all eight or ten parameters.
//
// Finite differences of float32 through BatchNorm on 32 values per channel
// are delicate: BatchNorm magnifies small weight changes, and a ReLU kink
// crossed by a step changes the slope. Hence a small step (1e-3) with
// somewhat looser tolerances, and BatchNorm betas of 2 and 3 that keep most
// pre-activations of both ReLUs clear of 0 (most, not all: the masks are
// still exercised). Over 40 seeds each case passed 39 or 40 times this way,
// against about 30 with the default betas.
TEST(ResidualTest, GradCheck) {
  autograd::GradCheckOptions options;
  options.eps = 1e-3;
  options.atol = 5e-3;
  options.rtol = 3e-2;
  auto shift_betas = [](Residual& block) {
    for (auto& [name, p] : block.NamedParameters()) {
      if (name == "bn1.bias") nn::ConstantInit(p.data(), 2.0f);
      if (name == "bn2.bias") nn::ConstantInit(p.data(), 3.0f);
    }
  };
  {
    ManualSeed(4);
    Residual block(2, 2);
    shift_betas(block);
    const absl::Status s = nn::GradCheckModule(
        block, DistinctValues({2, 2, 4, 4}, 0.05f), options);
    EXPECT_TRUE(s.ok()) << "identity shortcut: " << s;
  }
  {
    ManualSeed(5);
    Residual block(2, 3, /*use_1x1conv=*/true, /*strides=*/2);
    shift_betas(block);
    const absl::Status s = nn::GradCheckModule(
        block, DistinctValues({2, 2, 4, 4}, 0.05f), options);
    EXPECT_TRUE(s.ok()) << "1x1 conv shortcut: " << s;
  }
}

}  // namespace
}  // namespace dive::models
