#include "nn/linear.h"

#include <vector>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nn/testing.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::nn {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::Pointwise;

TEST(LinearTest, ShapesAndNames) {
  Linear fc(784, 256);
  EXPECT_EQ(fc.weight().shape(), Shape({256, 784}));
  EXPECT_EQ(fc.bias().shape(), Shape({256}));
  EXPECT_TRUE(fc.weight().requires_grad());
  EXPECT_EQ(fc.NamedParameters()[0].first, "weight");
  EXPECT_EQ(fc.NamedParameters()[1].first, "bias");
  EXPECT_EQ(fc.NumParameters(), 200960);
  EXPECT_EQ(fc.Describe(), "Linear(784, 256)");
  EXPECT_EQ(fc(autograd::Variable(Tensor::Zeros({32, 784}))).shape(),
            Shape({32, 256}));
}

TEST(LinearTest, ForwardWithSetWeights) {
  Linear fc(3, 2);
  AssignValues(fc.weight().data(), {1, 2, 3, 4, 5, 6});
  AssignValues(fc.bias().data(), {0.5f, -1});
  const autograd::Variable y =
      fc(autograd::Variable(Tensor::FromVector({1, 0, -1, 2, 1, 0}, {2, 3})));
  // [1 - 3 + 0.5, 4 - 6 - 1], [2 + 2 + 0.5, 8 + 5 - 1]
  EXPECT_EQ(y.shape(), Shape({2, 2}));
  EXPECT_THAT(y.data().ToVector(),
              Pointwise(FloatNear(1e-6), std::vector<float>{-1.5f, -3, 4.5f, 12}));
}

TEST(LinearTest, WithoutBias) {
  Linear fc(2, 1, /*bias=*/false);
  EXPECT_FALSE(fc.bias().defined());
  EXPECT_EQ(fc.Parameters().size(), 1u);
  EXPECT_EQ(fc.Describe(), "Linear(2, 1, bias=false)");
  AssignValues(fc.weight().data(), {2, -1});
  EXPECT_THAT(fc(autograd::Variable(Tensor::FromVector({3, 4}, {1, 2})))
                  .data()
                  .ToVector(),
              ElementsAre(2.0f));
}

TEST(LinearTest, GradCheck) {
  ManualSeed(3);
  Linear fc(4, 3);
  const absl::Status s = GradCheckModule(fc, Normal({5, 4}, 0, 1));
  EXPECT_TRUE(s.ok()) << s;
  Linear no_bias(4, 3, /*bias=*/false);
  const absl::Status t = GradCheckModule(no_bias, Normal({2, 4}, 0, 1));
  EXPECT_TRUE(t.ok()) << t;
}

TEST(LinearTest, GradientsReachTheParameters) {
  Linear fc(2, 1);
  AssignValues(fc.weight().data(), {1, 1});
  autograd::Variable y =
      fc(autograd::Variable(Tensor::FromVector({1, 2, 3, 4}, {2, 2})));
  Sum(y).Backward();
  EXPECT_THAT(fc.weight().grad().ToVector(), ElementsAre(4.0f, 6.0f));
  EXPECT_THAT(fc.bias().grad().ToVector(), ElementsAre(2.0f));
}

TEST(LinearDeathTest, WrongInputShape) {
  Linear fc(784, 256);
  EXPECT_DEATH(fc(autograd::Variable(Tensor::Zeros({32, 100}))),
               "Linear\\(784, 256\\): expected input \\[N, 784\\], got "
               "\\[32, 100\\]");
  EXPECT_DEATH(fc(autograd::Variable(Tensor::Zeros({32, 1, 28, 28}))),
               "Linear\\(784, 256\\): expected input \\[N, 784\\], got "
               "\\[32, 1, 28, 28\\]");
  EXPECT_DEATH(Linear(0, 3), "must be positive, got 0 and 3");
}

}  // namespace
}  // namespace dive::nn
