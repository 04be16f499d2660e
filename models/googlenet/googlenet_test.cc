#include "models/googlenet/googlenet.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "autograd/functions.h"
#include "autograd/hook_handle.h"
#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/testing.h"
#include "nn/bf16_activations.h"
#include "nn/conv2d.h"
#include "nn/init.h"
#include "nn/testing.h"
#include "tensor/gemm.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

using ::testing::ElementsAreArray;

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
// Fused, in bf16 autocast training (nn/bf16_activations.h), the output and
// each path's last convolution are stored in bf16: the exact bf16 step's
// output rounded, bit for bit (every path ends in a ReLU'd convolution, so
// rounding there or in the concatenation is the same). Otherwise float32.
TEST(InceptionTest, StoresItsOutputInBf16UnderAutocast) {
  ManualSeed(4);
  Inception blk(6, 2, {3, 4}, {2, 3}, 2);
  blk.Fuse();
  const autograd::Variable x(Normal({2, 6, 7, 7}, 0, 1));
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  const auto run = [&](nn::Bf16Activations choice, int* bf16_convs) {
    const nn::ScopedBf16Activations stored(choice);
    autograd::HookHandle counter = blk.RegisterForwardHooksOnAll(
        nullptr, [bf16_convs](nn::Module& m, const autograd::Variable&,
                              const autograd::Variable& out) {
          *bf16_convs += dynamic_cast<nn::Conv2d*>(&m) != nullptr &&
                         out.data().dtype() == DType::kBfloat16;
          return autograd::Variable();
        });
    const Tensor y = blk(x).data();
    counter.Remove();
    return y;
  };
  int exact_bf16 = 0, autocast_bf16 = 0;
  const Tensor exact = run(nn::Bf16Activations::kWhereExact, &exact_bf16);
  const Tensor stored = run(nn::Bf16Activations::kAutocast, &autocast_bf16);
  EXPECT_EQ(exact.dtype(), DType::kFloat32);
  ASSERT_EQ(stored.dtype(), DType::kBfloat16);
  EXPECT_EQ(stored.ToVector(), exact.To(DType::kBfloat16).ToVector());
  EXPECT_EQ(exact_bf16, 2);     // the 1x1 reductions into paths 2 and 3
  EXPECT_EQ(autocast_bf16, 6);  // and each path's last convolution
  blk.Eval();
  int eval_bf16 = 0;
  EXPECT_EQ(run(nn::Bf16Activations::kAutocast, &eval_bf16).dtype(),
            DType::kFloat32);
}

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

}  // namespace
}  // namespace dive::models
