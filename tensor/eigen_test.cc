#include "tensor/eigen.h"

#include "gtest/gtest.h"

namespace dive {
namespace {

// 0, 1, ..., numel-1 viewed as `shape`.
Tensor Iota(const Shape& shape) {
  return Tensor::Arange(shape.numel()).View(shape);
}

TEST(EigenTest, VectorMapsTheDataInPlace) {
  Tensor x = Iota({2, 3});
  VectorMap f = EigenVector(x);
  ASSERT_EQ(f.size(), 6);
  EXPECT_EQ(f(4), 4);
  f(4) = -4;
  EXPECT_EQ(x.at<float>({1, 1}), -4);
  EXPECT_FLOAT_EQ(EigenVector(x).sum(), 0 + 1 + 2 + 3 - 4 + 5);

  // A contiguous slice maps from its offset.
  VectorMap row = EigenVector(x.Slice(0, 1, 2));
  EXPECT_EQ(row.size(), 3);
  EXPECT_EQ(row(0), 3);
}

TEST(EigenTest, MatrixIsRowMajorOverTheFirstDimension) {
  Tensor x = Iota({2, 3, 4});
  MatrixMap m = EigenMatrix(x);
  EXPECT_EQ(m.rows(), 2);
  EXPECT_EQ(m.cols(), 12);
  EXPECT_EQ(m(1, 5), 17);
  MatrixMap m2 = EigenMatrix(x, 6, 4);
  EXPECT_EQ(m2.rows(), 6);
  EXPECT_EQ(m2(4, 3), 19);
  m2(0, 1) = 100;
  EXPECT_EQ(x.at<float>({0, 0, 1}), 100);
  EXPECT_EQ(EigenMatrix(Tensor::Zeros({0, 3})).cols(), 0);
}

TEST(EigenDeathTest, NamesWhatCannotBeMapped) {
  EXPECT_DEATH(EigenVector(Iota({2, 3}).Transpose(0, 1)),
               "EigenVector of non-contiguous tensor \\[3, 2\\]");
  EXPECT_DEATH(EigenMatrix(Iota({2, 3}), 4, 2),
               "EigenMatrix\\(4, 2\\) of shape \\[2, 3\\]");
  EXPECT_DEATH(EigenMatrix(Tensor::Scalar(1)), "EigenMatrix of a scalar");
}

}  // namespace
}  // namespace dive
