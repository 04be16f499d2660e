#include "models/vgg/vgg.h"

#include "absl/status/status.h"
#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
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

TEST(VggTest, ParameterCountFollowsTheInputSize) {
  // PyTorch's numel sum for the twins vgg(input_size, divisor) in
  // models/pytorch_twins.py. With divisor 4: convs
  // (1*16 + 16*32 + 32*64 + 64*64 + 64*128 + 128*128 + 128*128 + 128*128) * 9
  // + biases 688, linears 128*k*k*4096 + 4096*4096 + 4096*10 + 8202 for the
  // k = size / 32 features of the last block (7 at 224, the zoo's twin).
  EXPECT_EQ(Vgg11(4, 64)->NumParameters(), 19500362);  // 128*2*2 features
  EXPECT_EQ(Vgg11(4, 32)->NumParameters(), 17927498);  // 128*1*1 features
  EXPECT_EQ(Vgg11(8, 32)->NumParameters(), 17232938);
  // The full VGG-11 (vgg(224, 1)) has 128806154; not built here (515 MB).
}

TEST(VggSpecTest, MakeChecksDivisor) {
  for (int bad : {0, -2, 65}) {
    auto made = VggSpec(bad).make(32);
    EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(made.status().message(), HasSubstr("divisor"));
  }
}

}  // namespace
}  // namespace dive::models
