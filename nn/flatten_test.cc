#include "nn/flatten.h"

#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "nn/testing.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::nn {
namespace {

TEST(FlattenTest, KeepsTheBatchDimension) {
  Flatten flatten;
  EXPECT_EQ(flatten.Describe(), "Flatten(start=1, end=-1)");
  const Tensor x = Tensor::Arange(120).View({2, 3, 4, 5});
  const autograd::Variable y = flatten(autograd::Variable(x));
  EXPECT_EQ(y.shape(), Shape({2, 60}));
  EXPECT_EQ(y.data().ToVector(), x.ToVector());  // row-major order kept
  EXPECT_TRUE(y.data().SharesStorage(x));        // a view
}

TEST(FlattenTest, Range) {
  const Tensor x = Tensor::Zeros({2, 3, 4, 5});
  EXPECT_EQ(Flatten(1, 2)(autograd::Variable(x)).shape(), Shape({2, 12, 5}));
  EXPECT_EQ(Flatten(0)(autograd::Variable(x)).shape(), Shape({120}));
  EXPECT_EQ(Flatten(-2, -1)(autograd::Variable(x)).shape(), Shape({2, 3, 20}));
  EXPECT_EQ(Flatten()(autograd::Variable(Tensor::Zeros({7, 4}))).shape(),
            Shape({7, 4}));
}

TEST(FlattenTest, GradCheck) {
  ManualSeed(1);
  Flatten flatten;
  const absl::Status s = GradCheckModule(flatten, Normal({2, 2, 3, 2}, 0, 1));
  EXPECT_TRUE(s.ok()) << s;
}

TEST(FlattenDeathTest, MissingDimension) {
  Flatten flatten(2);
  EXPECT_DEATH(flatten(autograd::Variable(Tensor::Zeros({3, 4}))),
               "Flatten\\(start=2, end=-1\\): cannot flatten an input of "
               "shape \\[3, 4\\]");
}

}  // namespace
}  // namespace dive::nn
