#include "models/lenet/lenet.h"

#include "gtest/gtest.h"

namespace dive::models {
namespace {

TEST(LeNetTest, ParameterCountFollowsTheInputSize) {
  // The first Linear takes 16*k*k features, k = (size / 2 - 4) / 2: 16*5*5
  // -> 120 at 28x28 (the zoo's twin), 16*2*2 at 16x16, 16*1*1 at 12x12 (twins
  // lenet(16), lenet(12) in models/pytorch_twins.py).
  EXPECT_EQ(LeNet(16)->NumParameters(), 21386);
  EXPECT_EQ(LeNet(12)->NumParameters(), 15626);
}

}  // namespace
}  // namespace dive::models
