#include "models/bn_lenet/bn_lenet.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "models/testing.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

TEST(BnLeNetTest, ParameterCountFollowsTheInputSize) {
  // Convs (1*6*25 + 6) + (6*16*25 + 16), linears (16*k*k*120 + 120)
  // + (120*84 + 84) + (84*10 + 10), BatchNorm gammas and betas
  // 2 * (6 + 16 + 120 + 84), k = ((size - 4) / 2 - 4) / 2: 16*4*4 features at
  // 28x28 (the zoo's twin), 16*2*2 at 20x20, 16*1*1 at 16x16 (twins
  // bn_lenet(20), bn_lenet(16) in models/pytorch_twins.py; buffers are not
  // parameters).
  EXPECT_EQ(BnLeNet(20)->NumParameters(), 21838);
  EXPECT_EQ(BnLeNet(16)->NumParameters(), 16078);
}

// PyTorch's num_batches_tracked is an int64 scalar that each training-mode
// forward increments.
TEST(BnLeNetTest, NumBatchesTrackedCountsTrainingSteps) {
  ManualSeed(0);
  auto net = BnLeNet();
  EXPECT_EQ(net->StateDict().at("1.num_batches_tracked").dtype(),
            DType::kInt64);
  const auto [x, y] = RandomBatch(8, 28);
  SgdStepLosses(*net, x, y, 1.0f, 10);
  EXPECT_EQ(net->StateDict().at("13.num_batches_tracked").ToInt64Vector(),
            std::vector<int64_t>({10}));
}

}  // namespace
}  // namespace dive::models
