#include "models/bn_lenet/bn_lenet.h"

#include <string>
#include <vector>

#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "models/testing.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

TEST(BnLeNetTest, OutputShape) {
  auto net = BnLeNet();
  EXPECT_EQ((*net)(autograd::Variable(Normal({3, 1, 28, 28}, 0, 1))).shape(),
            Shape({3, 10}));
  net->Eval();
  EXPECT_EQ((*net)(autograd::Variable(Normal({1, 1, 28, 28}, 0, 1))).shape(),
            Shape({1, 10}));
  EXPECT_EQ(
      (*BnLeNet(20))(autograd::Variable(Normal({2, 1, 20, 20}, 0, 1))).shape(),
      Shape({2, 10}));
  EXPECT_EQ((*BnLeNet(kBnLeNetMinInputSize))(
                autograd::Variable(Normal({2, 1, 16, 16}, 0, 1)))
                .shape(),
            Shape({2, 10}));
}

TEST(BnLeNetTest, ParameterCountMatchesPyTorch) {
  // Convs (1*6*25 + 6) + (6*16*25 + 16), linears (256*120 + 120)
  // + (120*84 + 84) + (84*10 + 10), BatchNorm gammas and betas
  // 2 * (6 + 16 + 120 + 84): PyTorch's numel sum for the twin bn_lenet(28) in
  // models/pytorch_twins.py (buffers are not parameters).
  EXPECT_EQ(BnLeNet()->NumParameters(), 44878);
  // First Linear 16*2*2 -> 120 at 20x20, 16*1*1 at 16x16 (twins
  // bn_lenet(20), bn_lenet(16)).
  EXPECT_EQ(BnLeNet(20)->NumParameters(), 21838);
  EXPECT_EQ(BnLeNet(16)->NumParameters(), 16078);
}

TEST(BnLeNetTest, StateDictKeysMatchPyTorch) {
  // list(bn_lenet(28).state_dict()) of the PyTorch twin, in its order.
  const std::vector<std::string> state_dict = {
      "0.weight",          "0.bias",
      "1.weight",          "1.bias",
      "1.running_mean",    "1.running_var",
      "1.num_batches_tracked",
      "4.weight",          "4.bias",
      "5.weight",          "5.bias",
      "5.running_mean",    "5.running_var",
      "5.num_batches_tracked",
      "9.weight",          "9.bias",
      "10.weight",         "10.bias",
      "10.running_mean",   "10.running_var",
      "10.num_batches_tracked",
      "12.weight",         "12.bias",
      "13.weight",         "13.bias",
      "13.running_mean",   "13.running_var",
      "13.num_batches_tracked",
      "15.weight",         "15.bias"};
  // [name for name, _ in bn_lenet(28).named_parameters()].
  const std::vector<std::string> parameters = {
      "0.weight",  "0.bias",  "1.weight",  "1.bias",  "4.weight",  "4.bias",
      "5.weight",  "5.bias",  "9.weight",  "9.bias",  "10.weight", "10.bias",
      "12.weight", "12.bias", "13.weight", "13.bias", "15.weight", "15.bias"};
  auto net = BnLeNet();
  EXPECT_EQ(ParameterNames(*net), parameters);
  EXPECT_EQ(StateDictKeys(*net), Sorted(state_dict));
  const auto state = net->StateDict();
  EXPECT_EQ(state.at("1.num_batches_tracked").dtype(), DType::kInt64);
  EXPECT_EQ(state.at("10.running_var").shape(), Shape({120}));
}

TEST(BnLeNetTest, LossGoesDown) {
  ManualSeed(0);
  auto net = BnLeNet();
  const auto [x, y] = RandomBatch(8, 28);
  ExpectLossDecreases(SgdStepLosses(*net, x, y, 1.0f, 10));
  EXPECT_EQ(net->StateDict().at("13.num_batches_tracked").ToInt64Vector(),
            std::vector<int64_t>({10}));
}

TEST(BnLeNetSpecTest, MakeChecksInputSize) {
  const ModelSpec spec = BnLeNetSpec();
  auto net = spec.make(28);
  ASSERT_TRUE(net.ok()) << net.status();
  EXPECT_EQ((*net)->NumParameters(), 44878);
  EXPECT_TRUE(spec.make(16).ok());
  for (int64_t bad : {15, 0, 513}) ExpectRejectsInputSize(spec, bad, "LeNet");
}

}  // namespace
}  // namespace dive::models
