#include "models/vgg/vgg.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/testing.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

using ::testing::HasSubstr;

TEST(VggTest, BlockHalvesResolution) {
  auto block = VggBlock(2, 3, 8);
  EXPECT_EQ(block->size(), 5u);  // conv, relu, conv, relu, pool
  EXPECT_EQ((*block)(autograd::Variable(Normal({2, 3, 8, 8}, 0, 1))).shape(),
            Shape({2, 8, 4, 4}));
  // 3*8*9 + 8 + 8*8*9 + 8.
  EXPECT_EQ(block->NumParameters(), 808);
}

TEST(VggTest, OutputShapeAtBookSize) {
  auto net = Vgg11();
  net->Eval();
  autograd::NoGradGuard no_grad;
  EXPECT_EQ((*net)(autograd::Variable(Normal({1, 1, 224, 224}, 0, 1))).shape(),
            Shape({1, 10}));
}

TEST(VggTest, OutputShapeAtSmallSizes) {
  EXPECT_EQ(
      (*Vgg11(4, 64))(autograd::Variable(Normal({2, 1, 64, 64}, 0, 1))).shape(),
      Shape({2, 10}));
  EXPECT_EQ((*Vgg11(8, kVggMinInputSize))(
                autograd::Variable(Normal({2, 1, 32, 32}, 0, 1)))
                .shape(),
            Shape({2, 10}));
}

TEST(VggTest, ParameterCountMatchesPyTorch) {
  // PyTorch's numel sum for the twins vgg(input_size, divisor) in
  // models/pytorch_twins.py. At 224 with divisor 4: convs
  // (1*16 + 16*32 + 32*64 + 64*64 + 64*128 + 128*128 + 128*128 + 128*128) * 9
  // + biases 592, linears 6272*4096 + 4096*4096 + 4096*10 + 8202.
  EXPECT_EQ(Vgg11(4, 224)->NumParameters(), 43093322);
  EXPECT_EQ(Vgg11(4, 64)->NumParameters(), 19500362);  // 128*2*2 features
  EXPECT_EQ(Vgg11(4, 32)->NumParameters(), 17927498);  // 128*1*1 features
  EXPECT_EQ(Vgg11(8, 32)->NumParameters(), 17232938);
  // The full VGG-11 (vgg(224, 1)) has 128806154; not built here (515 MB).
}

TEST(VggTest, StateDictKeysMatchPyTorch) {
  // list(vgg(224, 4).state_dict()) of the PyTorch twin, in its order.
  const std::vector<std::string> expected = {
      "0.0.weight", "0.0.bias", "1.0.weight", "1.0.bias", "2.0.weight",
      "2.0.bias",   "2.2.weight", "2.2.bias", "3.0.weight", "3.0.bias",
      "3.2.weight", "3.2.bias", "4.0.weight", "4.0.bias", "4.2.weight",
      "4.2.bias",   "6.weight", "6.bias",   "9.weight",   "9.bias",
      "12.weight",  "12.bias"};
  auto net = Vgg11(4, 32);
  EXPECT_EQ(ParameterNames(*net), expected);
  EXPECT_EQ(StateDictKeys(*net), Sorted(expected));
  const auto state = net->StateDict();
  EXPECT_EQ(state.at("0.0.weight").shape(), Shape({16, 1, 3, 3}));
  EXPECT_EQ(state.at("4.2.weight").shape(), Shape({128, 128, 3, 3}));
  EXPECT_EQ(state.at("6.weight").shape(), Shape({4096, 128}));
}

TEST(VggTest, LossGoesDown) {
  ManualSeed(0);
  auto net = Vgg11(8, kVggMinInputSize);
  const auto [x, y] = RandomBatch(4, kVggMinInputSize);
  // Loss in eval mode (no dropout) before and after a few training steps.
  const auto [before, after] =
      EvalLossBeforeAndAfterSgdSteps(*net, x, y, 0.05f, 5);
  EXPECT_LT(after, before) << "loss " << before << " -> " << after;
}

TEST(VggSpecTest, MakeChecksInputSizeAndDivisor) {
  auto net = VggSpec(8).make(kVggMinInputSize);
  ASSERT_TRUE(net.ok()) << net.status();
  EXPECT_EQ((*net)->NumParameters(), 17232938);
  for (int64_t bad : {31, 28, 0, 513}) {
    ExpectRejectsInputSize(VggSpec(), bad, "VGG");
  }
  for (int bad : {0, -2, 65}) {
    auto made = VggSpec(bad).make(32);
    EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(made.status().message(), HasSubstr("divisor"));
  }
}

}  // namespace
}  // namespace dive::models
