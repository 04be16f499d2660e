#include "models/alexnet/alexnet.h"

#include "gtest/gtest.h"

namespace dive::models {
namespace {

TEST(AlexNetTest, FeatureSide) {
  EXPECT_EQ(AlexNetFeatureSide(224), 5);  // 256 * 5 * 5 = 6400, the book's
  EXPECT_EQ(AlexNetFeatureSide(96), 1);
  EXPECT_EQ(AlexNetFeatureSide(kAlexNetMinInputSize), 1);
  EXPECT_LE(AlexNetFeatureSide(kAlexNetMinInputSize - 1), 0);
}

TEST(AlexNetTest, ParameterCountFollowsTheInputSize) {
  // Convs 1*96*121 + 96*256*25 + 256*384*9 + 384*384*9 + 384*256*9 (+ biases
  // 96 + 256 + 384 + 384 + 256), linears 256*4096 + 4096*4096 + 4096*10
  // (+ 4096 + 4096 + 10): 256*1*1 features at 65..96 where 224 has 256*5*5
  // (twins alexnet(65), alexnet(96) in models/pytorch_twins.py).
  EXPECT_EQ(AlexNet(96)->NumParameters(), 21598922);
  EXPECT_EQ(AlexNet(65)->NumParameters(), 21598922);
}

}  // namespace
}  // namespace dive::models
