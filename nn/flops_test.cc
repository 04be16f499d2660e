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

}  // namespace
}  // namespace dive::nn
