#include "nn/flops.h"

#include <memory>

#include "absl/status/status.h"
#include "tensor/tensor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nn/activation.h"
#include "nn/batch_norm.h"
#include "nn/conv2d.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/pool.h"
#include "nn/sequential.h"

namespace dive::nn {
namespace {

using ::testing::HasSubstr;

// The book's LeNet (d2l 6.6) with ReLU: the multiply-adds worked out by hand.
TEST(FlopsTest, CountsConvolutionAndLinearMultiplyAdds) {
  Sequential lenet({std::make_shared<Conv2d>(1, 6, 5, 1, 2),
                    std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2),
                    std::make_shared<Conv2d>(6, 16, 5),
                    std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2),
                    std::make_shared<Flatten>(),
                    std::make_shared<Linear>(400, 120),
                    std::make_shared<Linear>(120, 84),
                    std::make_shared<Linear>(84, 10)});
  // conv1 6 x 28 x 28 outputs of 1 x 5 x 5: 117,600; conv2 16 x 10 x 10 of
  // 6 x 5 x 5: 240,000; the linears 48,000 + 10,080 + 840.
  absl::StatusOr<int64_t> flops = ForwardFlopsPerExample(lenet, {1, 28, 28});
  ASSERT_TRUE(flops.ok()) << flops.status();
  EXPECT_EQ(*flops, 2 * (117'600 + 240'000 + 48'000 + 10'080 + 840));
}

TEST(FlopsTest, StridesCountWhatIsComputed) {
  // Stride 2 on 8 x 8 with padding 1: 4 x 4 outputs of 3 x 3 x 3 taps each.
  Sequential strided({std::make_shared<Conv2d>(3, 4, 3, 2, 1)});
  EXPECT_EQ(*ForwardFlopsPerExample(strided, {3, 8, 8}), 2 * 4 * 16 * 27);
}

TEST(FlopsTest, LeavesEveryModuleAndItsStatisticsAsTheyWere) {
  auto bn = std::make_shared<BatchNorm2d>(2);
  auto conv = std::make_shared<Conv2d>(1, 2, 3);
  Sequential net({conv, bn});
  bn->Eval();  // a child in another mode than its parent
  const Tensor mean = bn->running_mean().Clone();
  ASSERT_TRUE(ForwardFlopsPerExample(net, {1, 6, 6}).ok());
  EXPECT_TRUE(net.is_training());
  EXPECT_TRUE(conv->is_training());
  EXPECT_FALSE(bn->is_training());
  EXPECT_EQ(bn->running_mean().ToVector(), mean.ToVector());
}

TEST(FlopsTest, RefusesAShapeThatIsNotAnImage) {
  Sequential net({std::make_shared<Linear>(4, 2)});
  for (const Shape& bad : {Shape{4}, Shape{1, 0, 4}, Shape{1, 1, 2, 2}}) {
    const absl::Status s = ForwardFlopsPerExample(net, bad).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), HasSubstr("[C, H, W]"));
  }
}

// LayerCost, worked out by hand (4-byte elements).
TEST(FlopsTest, LayerCostOfConvolution) {
  // Conv2d(2, 3, 3) on [1, 2, 5, 5]: n = 50 inputs, m = 27 outputs, W = 54,
  // b = 3; F = 2 x 27 outputs x 18 taps = 972.
  Conv2d conv(2, 3, 3);
  const LayerCost c = LayerCostOf(conv, {1, 2, 5, 5}, {1, 3, 3, 3}, true);
  EXPECT_EQ(c.forward_flops, 972);
  EXPECT_EQ(c.backward_flops, 2 * 972);
  EXPECT_EQ(c.forward_bytes, 4 * (50 + 27 + 54 + 3));
  // dy, x, W read; dW, db, dx written.
  EXPECT_EQ(c.backward_bytes, 4 * (27 + 50 + 54 + 54 + 3 + 50));
  // The first layer: no input gradient, so neither W read nor dx written.
  const LayerCost first = LayerCostOf(conv, {1, 2, 5, 5}, {1, 3, 3, 3}, false);
  EXPECT_EQ(first.backward_flops, 972);
  EXPECT_EQ(first.backward_bytes, 4 * (27 + 50 + 54 + 3));
}

TEST(FlopsTest, LayerCostOfLinearBatchNormReluAndPooling) {
  Linear fc(4, 2);  // [3, 4] -> [3, 2]: F = 2 x 6 x 4
  LayerCost c = LayerCostOf(fc, {3, 4}, {3, 2}, true);
  EXPECT_EQ(c.forward_flops, 48);
  EXPECT_EQ(c.backward_flops, 96);
  EXPECT_EQ(c.forward_bytes, 4 * (12 + 6 + 8 + 2));
  EXPECT_EQ(c.backward_bytes, 4 * (6 + 12 + 8 + 2 + 8 + 12));

  BatchNorm2d bn(2);  // [2, 2, 3, 3]: 36 elements, 2 + 2 parameters
  c = LayerCostOf(bn, {2, 2, 3, 3}, {2, 2, 3, 3}, true);
  EXPECT_EQ(c.forward_flops, 5 * 36);
  EXPECT_EQ(c.backward_flops, 7 * 36);
  EXPECT_EQ(c.forward_bytes, 4 * (36 + 36 + 4));
  EXPECT_EQ(c.backward_bytes, 4 * (36 + 36 + 4 + 2 + 36));

  ReLU relu;  // y read, dy read, dx written
  c = LayerCostOf(relu, {2, 3}, {2, 3}, true);
  EXPECT_EQ(c.forward_flops, 6);
  EXPECT_EQ(c.backward_flops, 6);
  EXPECT_EQ(c.forward_bytes, 4 * 12);
  EXPECT_EQ(c.backward_bytes, 4 * 18);

  MaxPool2d pool(2);  // [1, 1, 4, 4] -> 4 outputs of 3 comparisons each
  c = LayerCostOf(pool, {1, 1, 4, 4}, {1, 1, 2, 2}, true);
  EXPECT_EQ(c.forward_flops, 12);
  EXPECT_EQ(c.backward_flops, 0);
  EXPECT_EQ(c.forward_bytes, 4 * (16 + 4) + 4 * 4);   // + the int32 argmax
  EXPECT_EQ(c.backward_bytes, 4 * (4 + 16) + 4 * 4);  // dy, argmax, dx

  Flatten flatten;  // a view
  c = LayerCostOf(flatten, {2, 3, 1}, {2, 3}, true);
  EXPECT_EQ(c.forward_bytes + c.backward_bytes + c.forward_flops, 0);
}

}  // namespace
}  // namespace dive::nn
