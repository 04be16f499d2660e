#include "tensor/tensor.h"

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "Eigen/Core"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dive {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

// 0, 1, ..., numel-1 viewed as `shape`.
Tensor Iota(const Shape& shape) {
  return Tensor::Arange(shape.numel()).View(shape);
}

// Address of an element computed from the view's strides and offset directly,
// independently of Tensor::at().
float* Ptr(const Tensor& t, std::initializer_list<int64_t> index) {
  int64_t off = 0;
  int i = 0;
  for (int64_t v : index) off += v * t.strides()[i++];
  return t.data() + off;
}

bool IsAligned(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 64 == 0;
}

// ---- DTypes -----------------------------------------------------------------

TEST(DTypeTest, NamesAndSizes) {
  EXPECT_STREQ(DTypeName(DType::kFloat32), "float32");
  EXPECT_STREQ(DTypeName(DType::kInt64), "int64");
  EXPECT_STREQ(DTypeName(DType::kInt32), "int32");
  EXPECT_EQ(DTypeSize(DType::kFloat32), 4u);
  EXPECT_EQ(DTypeSize(DType::kInt64), 8u);
  EXPECT_EQ(DTypeSize(DType::kInt32), 4u);
  EXPECT_STREQ(DTypeName(DType::kInt8), "int8");
  EXPECT_STREQ(DTypeName(DType::kUint8), "uint8");
  EXPECT_EQ(DTypeSize(DType::kInt8), 1u);
  EXPECT_EQ(DTypeSize(DType::kUint8), 1u);
}

// ---- Creation ---------------------------------------------------------------

TEST(TensorTest, DefaultIsUndefined) {
  Tensor t;
  EXPECT_FALSE(t.defined());
  EXPECT_EQ(t.ToString(), "Tensor(undefined)");
}

TEST(TensorTest, Zeros) {
  Tensor t = Tensor::Zeros({2, 3});
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.shape(), Shape({2, 3}));
  EXPECT_EQ(t.rank(), 2);
  EXPECT_EQ(t.dim(0), 2);
  EXPECT_EQ(t.dim(-1), 3);
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.dtype(), DType::kFloat32);
  EXPECT_EQ(t.strides(), Dims({3, 1}));
  EXPECT_EQ(t.offset(), 0);
  EXPECT_THAT(t.ToVector(), ElementsAre(0, 0, 0, 0, 0, 0));

  Tensor i = Tensor::Zeros({4}, DType::kInt64);
  EXPECT_EQ(i.dtype(), DType::kInt64);
  EXPECT_THAT(i.ToInt64Vector(), ElementsAre(0, 0, 0, 0));

  Tensor j = Tensor::Zeros({3}, DType::kInt32);
  EXPECT_EQ(j.dtype(), DType::kInt32);
  EXPECT_EQ(j.data<int32_t>()[2], 0);
}

TEST(TensorTest, OnesAndFull) {
  EXPECT_THAT(Tensor::Ones({2, 2}).ToVector(), ElementsAre(1, 1, 1, 1));
  Tensor f = Tensor::Full({3, 1}, -2.5f);
  EXPECT_EQ(f.shape(), Shape({3, 1}));
  EXPECT_THAT(f.ToVector(), ElementsAre(-2.5f, -2.5f, -2.5f));
}

TEST(TensorTest, Scalar) {
  Tensor s = Tensor::Scalar(3.5f);
  EXPECT_EQ(s.rank(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_TRUE(s.strides().empty());
  EXPECT_TRUE(s.is_contiguous());
  EXPECT_EQ(s.item(), 3.5f);
  EXPECT_EQ(s.at<float>({}), 3.5f);
}

TEST(TensorTest, FromVectorIsRowMajor) {
  Tensor t = Tensor::FromVector({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(t.at<float>({0, 0}), 1);
  EXPECT_EQ(t.at<float>({0, 2}), 3);
  EXPECT_EQ(t.at<float>({1, 0}), 4);
  EXPECT_EQ(t.at<float>({1, 2}), 6);
  EXPECT_THAT(t.ToVector(), ElementsAre(1, 2, 3, 4, 5, 6));
}

TEST(TensorTest, FromInt64Vector) {
  const int64_t big = int64_t{1} << 40;
  Tensor t = Tensor::FromInt64Vector({3, -1, big, 7}, {2, 2});
  EXPECT_EQ(t.dtype(), DType::kInt64);
  EXPECT_EQ(t.at<int64_t>({0, 1}), -1);
  EXPECT_EQ(t.at<int64_t>({1, 0}), big);  // not squeezed through float
  EXPECT_THAT(t.ToInt64Vector(), ElementsAre(3, -1, big, 7));
}

TEST(TensorTest, Arange) {
  Tensor t = Tensor::Arange(5);
  EXPECT_EQ(t.shape(), Shape({5}));
  EXPECT_THAT(t.ToVector(), ElementsAre(0, 1, 2, 3, 4));
  EXPECT_EQ(Tensor::Arange(0).numel(), 0);
}

TEST(TensorTest, EmptyWithZeroSizedDimension) {
  Tensor t = Tensor::Empty({3, 0});
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.numel(), 0);
  EXPECT_TRUE(t.ToVector().empty());
}

TEST(TensorTest, DataIs64ByteAligned) {
  for (int64_t n : {1, 3, 15, 16, 17, 63, 1000, 4097}) {
    SCOPED_TRACE(n);
    EXPECT_TRUE(IsAligned(Tensor::Empty({n}).data()));
    EXPECT_TRUE(IsAligned(Tensor::Zeros({n, 3}).data()));
    EXPECT_TRUE(IsAligned(Tensor::Zeros({n}, DType::kInt64).data<int64_t>()));
    EXPECT_TRUE(
        IsAligned(Tensor::FromVector(std::vector<float>(n, 1.0f), {n}).data()));
  }
  EXPECT_TRUE(IsAligned(Tensor::Scalar(1.0f).data()));
  EXPECT_TRUE(IsAligned(Tensor::Empty({0}).data()));
}

TEST(TensorTest, FreedStorageIsReusedAndStillAligned) {
  // Same-size allocations go through the block cache; contents of a new
  // Zeros() must still be zero after a previous block of that size was dirty.
  { Tensor t = Tensor::Full({123}, 7.0f); }
  Tensor z = Tensor::Zeros({123});
  EXPECT_TRUE(IsAligned(z.data()));
  for (float v : z.ToVector()) ASSERT_EQ(v, 0.0f);
}

TEST(TensorTest, CopyingTheHandleSharesData) {
  Tensor a = Tensor::Zeros({3});
  Tensor b = a;
  EXPECT_TRUE(b.SharesStorage(a));
  b.data()[1] = 5;
  EXPECT_EQ(a.at<float>({1}), 5);
  EXPECT_FALSE(a.SharesStorage(Tensor::Zeros({3})));
}

TEST(TensorTest, OwnsStorageAloneOnlyForTheSoleFullContiguousHandle) {
  Tensor a = Iota({2, 3});
  EXPECT_TRUE(a.OwnsStorageAlone());
  {
    Tensor b = a;
    EXPECT_FALSE(a.OwnsStorageAlone());
    EXPECT_FALSE(b.OwnsStorageAlone());
  }
  EXPECT_TRUE(a.OwnsStorageAlone());
  EXPECT_FALSE(Iota({2, 3}).Slice(0, 1, 2).OwnsStorageAlone());  // a part
  EXPECT_FALSE(Iota({2, 3}).Transpose(0, 1).OwnsStorageAlone());
  Tensor v = Iota({2, 3}).View({3, 2});  // the source handle is gone
  EXPECT_TRUE(v.OwnsStorageAlone());
  EXPECT_FALSE(Tensor().OwnsStorageAlone());
}

// ---- Views ------------------------------------------------------------------

TEST(TensorViewTest, ViewSharesStorage) {
  Tensor x = Tensor::Arange(6);
  Tensor v = x.View({2, 3});
  EXPECT_TRUE(v.SharesStorage(x));
  EXPECT_EQ(v.shape(), Shape({2, 3}));
  EXPECT_EQ(v.strides(), Dims({3, 1}));
  EXPECT_EQ(v.at<float>({1, 0}), 3);
  *Ptr(v, {1, 2}) = 100;
  EXPECT_EQ(x.at<float>({5}), 100);

  // A contiguous view with an offset keeps the offset.
  Tensor rows = Iota({4, 3}).Slice(0, 1, 3);
  Tensor flat = rows.View({-1});
  EXPECT_TRUE(flat.SharesStorage(rows));
  EXPECT_EQ(flat.offset(), 3);
  EXPECT_THAT(flat.ToVector(), ElementsAre(3, 4, 5, 6, 7, 8));
}

TEST(TensorViewTest, ViewInfersMinusOne) {
  Tensor x = Tensor::Arange(24);
  EXPECT_EQ(x.View({2, -1, 3}).shape(), Shape({2, 4, 3}));
  EXPECT_EQ(x.View({-1}).shape(), Shape({24}));
}

TEST(TensorViewTest, ReshapeOfContiguousIsAView) {
  Tensor x = Iota({2, 6});
  Tensor r = x.Reshape({3, 4});
  EXPECT_TRUE(r.SharesStorage(x));
  EXPECT_EQ(r.shape(), Shape({3, 4}));
  *Ptr(r, {2, 1}) = -1;  // element 9
  EXPECT_EQ(x.at<float>({1, 3}), -1);
}

TEST(TensorViewTest, ReshapeOfNonContiguousCopies) {
  Tensor x = Iota({2, 3});
  Tensor t = x.Transpose(0, 1);  // [[0, 3], [1, 4], [2, 5]]
  Tensor r = t.Reshape({6});
  EXPECT_FALSE(r.SharesStorage(x));
  EXPECT_TRUE(r.is_contiguous());
  EXPECT_THAT(r.ToVector(), ElementsAre(0, 3, 1, 4, 2, 5));
  r.data()[0] = 42;
  EXPECT_EQ(x.at<float>({0, 0}), 0);
}

TEST(TensorViewTest, Flatten) {
  Tensor x = Iota({2, 3, 4, 5});
  EXPECT_EQ(x.Flatten().shape(), Shape({120}));
  EXPECT_EQ(x.Flatten(1).shape(), Shape({2, 60}));
  EXPECT_EQ(x.Flatten(1, 2).shape(), Shape({2, 12, 5}));
  EXPECT_EQ(x.Flatten(0, -2).shape(), Shape({24, 5}));
  EXPECT_TRUE(x.Flatten(1).SharesStorage(x));
  EXPECT_EQ(Tensor::Scalar(2.0f).Flatten().shape(), Shape({1}));
  // Non-contiguous input: values in logical order.
  Tensor t = Iota({2, 3}).Transpose(0, 1).Flatten();
  EXPECT_THAT(t.ToVector(), ElementsAre(0, 3, 1, 4, 2, 5));
}

TEST(TensorViewTest, Transpose) {
  Tensor x = Iota({2, 3});
  Tensor t = x.Transpose(0, 1);
  EXPECT_TRUE(t.SharesStorage(x));
  EXPECT_EQ(t.shape(), Shape({3, 2}));
  EXPECT_EQ(t.strides(), Dims({1, 3}));
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 2; ++j) {
      EXPECT_EQ(t.at<float>({i, j}), x.at<float>({j, i}));
    }
  }
  EXPECT_THAT(t.ToVector(), ElementsAre(0, 3, 1, 4, 2, 5));
  *Ptr(t, {2, 0}) = 50;
  EXPECT_EQ(x.at<float>({0, 2}), 50);
  EXPECT_EQ(x.Transpose(-1, -2).shape(), Shape({3, 2}));
}

TEST(TensorViewTest, Permute) {
  Tensor x = Iota({2, 3, 4});
  Tensor p = x.Permute({2, 0, 1});
  EXPECT_TRUE(p.SharesStorage(x));
  EXPECT_EQ(p.shape(), Shape({4, 2, 3}));
  EXPECT_EQ(p.strides(), Dims({1, 12, 4}));
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      for (int64_t k = 0; k < 4; ++k) {
        ASSERT_EQ(p.at<float>({k, i, j}), x.at<float>({i, j, k}));
      }
    }
  }
  *Ptr(p, {3, 1, 2}) = -7;
  EXPECT_EQ(x.at<float>({1, 2, 3}), -7);
  EXPECT_EQ(x.Permute({-1, -3, -2}).shape(), Shape({4, 2, 3}));
}

TEST(TensorViewTest, SliceWithStep) {
  Tensor x = Tensor::Arange(10);
  Tensor s = x.Slice(0, 1, 8, 3);
  EXPECT_TRUE(s.SharesStorage(x));
  EXPECT_EQ(s.shape(), Shape({3}));
  EXPECT_EQ(s.strides(), Dims({3}));
  EXPECT_EQ(s.offset(), 1);
  EXPECT_THAT(s.ToVector(), ElementsAre(1, 4, 7));
  *Ptr(s, {2}) = 70;
  EXPECT_EQ(x.at<float>({7}), 70);

  // `end` is clamped to the dimension.
  EXPECT_THAT(Tensor::Arange(10).Slice(0, 5, 100, 2).ToVector(),
              ElementsAre(5, 7, 9));
  // Empty slices.
  EXPECT_EQ(Tensor::Arange(10).Slice(0, 4, 4).numel(), 0);
  EXPECT_EQ(Tensor::Arange(10).Slice(0, 10, 12).numel(), 0);
}

TEST(TensorViewTest, SliceInnerAxis) {
  Tensor x = Iota({3, 4});
  Tensor s = x.Slice(-1, 1, 4, 2);  // columns 1 and 3
  EXPECT_EQ(s.shape(), Shape({3, 2}));
  EXPECT_EQ(s.strides(), Dims({4, 2}));
  EXPECT_THAT(s.ToVector(), ElementsAre(1, 3, 5, 7, 9, 11));
  *Ptr(s, {2, 0}) = -9;
  EXPECT_EQ(x.at<float>({2, 1}), -9);
}

TEST(TensorViewTest, Select) {
  Tensor x = Iota({2, 3, 4});
  Tensor s = x.Select(1, 2);
  EXPECT_TRUE(s.SharesStorage(x));
  EXPECT_EQ(s.shape(), Shape({2, 4}));
  EXPECT_THAT(s.ToVector(), ElementsAre(8, 9, 10, 11, 20, 21, 22, 23));
  *Ptr(s, {1, 3}) = 99;
  EXPECT_EQ(x.at<float>({1, 2, 3}), 99);

  EXPECT_THAT(x.Select(-1, 0).ToVector(), ElementsAre(0, 4, 8, 12, 16, 20));
  Tensor scalar = Tensor::Arange(3).Select(0, 2);
  EXPECT_EQ(scalar.rank(), 0);
  EXPECT_EQ(scalar.item(), 2);
}

TEST(TensorViewTest, UnsqueezeAndSqueeze) {
  Tensor x = Iota({2, 3});
  EXPECT_EQ(x.Unsqueeze(0).shape(), Shape({1, 2, 3}));
  EXPECT_EQ(x.Unsqueeze(1).shape(), Shape({2, 1, 3}));
  EXPECT_EQ(x.Unsqueeze(2).shape(), Shape({2, 3, 1}));
  EXPECT_EQ(x.Unsqueeze(-1).shape(), Shape({2, 3, 1}));
  EXPECT_EQ(x.Unsqueeze(-3).shape(), Shape({1, 2, 3}));
  Tensor u = x.Unsqueeze(1);
  EXPECT_TRUE(u.SharesStorage(x));
  EXPECT_TRUE(u.is_contiguous());
  EXPECT_EQ(u.at<float>({1, 0, 2}), 5);
  *Ptr(u, {1, 0, 1}) = 44;
  EXPECT_EQ(x.at<float>({1, 1}), 44);

  Tensor sq = u.Squeeze(1);
  EXPECT_TRUE(sq.SharesStorage(x));
  EXPECT_EQ(sq.shape(), Shape({2, 3}));
  EXPECT_THAT(sq.ToVector(), ElementsAreArray(x.ToVector()));
  EXPECT_EQ(Iota({2, 1}).Squeeze(-1).shape(), Shape({2}));
  EXPECT_EQ(Tensor::Scalar(1.0f).Unsqueeze(0).shape(), Shape({1}));
}

TEST(TensorViewTest, ExpandUsesStrideZero) {
  Tensor x = Tensor::FromVector({1, 2, 3}, {3, 1});
  Tensor e = x.Expand({2, 3, 4});
  EXPECT_TRUE(e.SharesStorage(x));
  EXPECT_EQ(e.shape(), Shape({2, 3, 4}));
  EXPECT_EQ(e.strides(), Dims({0, 1, 0}));
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      for (int64_t k = 0; k < 4; ++k) {
        EXPECT_EQ(e.at<float>({i, j, k}), static_cast<float>(j + 1));
      }
    }
  }
  // A write to the source shows up at every broadcast position.
  *Ptr(x, {1, 0}) = 20;
  EXPECT_EQ(e.at<float>({0, 1, 0}), 20);
  EXPECT_EQ(e.at<float>({1, 1, 3}), 20);

  Tensor s = Tensor::Scalar(4.0f).Expand({2, 2});
  EXPECT_EQ(s.strides(), Dims({0, 0}));
  EXPECT_THAT(s.ToVector(), ElementsAre(4, 4, 4, 4));
}

TEST(TensorViewTest, IsContiguous) {
  Tensor x = Iota({3, 4});
  EXPECT_TRUE(x.is_contiguous());
  EXPECT_TRUE(Tensor::Scalar(1).is_contiguous());
  EXPECT_FALSE(x.Transpose(0, 1).is_contiguous());
  // Transposing a dimension of size 1 keeps the layout.
  EXPECT_TRUE(Iota({1, 4}).Transpose(0, 1).is_contiguous());
  EXPECT_TRUE(x.Slice(0, 1, 3).is_contiguous());      // whole rows
  EXPECT_FALSE(x.Slice(0, 0, 3, 2).is_contiguous());  // skips a row
  EXPECT_FALSE(x.Slice(1, 0, 2).is_contiguous());     // part of each row
  EXPECT_TRUE(x.Select(0, 2).is_contiguous());
  EXPECT_FALSE(x.Select(1, 2).is_contiguous());
  EXPECT_FALSE(x.Expand({2, 3, 4}).is_contiguous());
  EXPECT_TRUE(x.Expand({1, 3, 4}).is_contiguous());
  EXPECT_TRUE(x.Unsqueeze(1).is_contiguous());
  EXPECT_TRUE(x.Transpose(0, 1).Transpose(0, 1).is_contiguous());
}

// ---- Copies -----------------------------------------------------------------

TEST(TensorCopyTest, ContiguousReturnsSelfWhenContiguous) {
  Tensor x = Iota({2, 3});
  EXPECT_TRUE(x.Contiguous().SharesStorage(x));
}

TEST(TensorCopyTest, ContiguousCopiesStridedViewsInLogicalOrder) {
  Tensor x = Iota({2, 3});
  Tensor c = x.Transpose(0, 1).Contiguous();
  EXPECT_FALSE(c.SharesStorage(x));
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.shape(), Shape({3, 2}));
  EXPECT_EQ(c.strides(), Dims({2, 1}));
  EXPECT_EQ(c.offset(), 0);
  EXPECT_THAT(c.ToVector(), ElementsAre(0, 3, 1, 4, 2, 5));
  c.data()[0] = 100;
  EXPECT_EQ(x.at<float>({0, 0}), 0);
  x.data()[1] = 200;
  EXPECT_EQ(c.at<float>({1, 0}), 1);
}

TEST(TensorCopyTest, CloneIsIndependent) {
  Tensor x = Iota({2, 3});
  Tensor c = x.Clone();
  EXPECT_FALSE(c.SharesStorage(x));
  EXPECT_THAT(c.ToVector(), ElementsAre(0, 1, 2, 3, 4, 5));
  c.data()[2] = -1;
  EXPECT_EQ(x.at<float>({0, 2}), 2);

  Tensor s = x.Slice(1, 1, 3).Clone();
  EXPECT_EQ(s.offset(), 0);
  EXPECT_THAT(s.ToVector(), ElementsAre(1, 2, 4, 5));

  Tensor e = Tensor::Scalar(3).Expand({2, 2}).Clone();
  EXPECT_EQ(e.strides(), Dims({2, 1}));
  e.data()[0] = 0;
  EXPECT_THAT(e.ToVector(), ElementsAre(0, 3, 3, 3));
}

TEST(TensorCopyTest, ToConvertsDtypes) {
  Tensor f = Tensor::FromVector({1.9f, -1.9f, 0.0f, 41.0f}, {2, 2});
  Tensor i = f.To(DType::kInt64);
  EXPECT_EQ(i.dtype(), DType::kInt64);
  EXPECT_EQ(i.shape(), Shape({2, 2}));
  EXPECT_THAT(i.ToInt64Vector(), ElementsAre(1, -1, 0, 41));  // truncation

  Tensor i32 = f.To(DType::kInt32);
  EXPECT_EQ(i32.dtype(), DType::kInt32);
  EXPECT_EQ(i32.at<int32_t>({1, 1}), 41);

  Tensor back = Tensor::FromInt64Vector({5, -3}, {2}).To(DType::kFloat32);
  EXPECT_EQ(back.dtype(), DType::kFloat32);
  EXPECT_THAT(back.ToVector(), ElementsAre(5.0f, -3.0f));

  Tensor i8 = Tensor::FromVector({-128, 127, 3}, {3}).To(DType::kInt8);
  EXPECT_EQ(i8.dtype(), DType::kInt8);
  EXPECT_EQ(i8.at<int8_t>({0}), -128);
  EXPECT_THAT(i8.ToVector(), ElementsAre(-128.0f, 127.0f, 3.0f));
  Tensor u8 = i8.Slice(0, 1, 3).To(DType::kUint8);
  EXPECT_EQ(u8.dtype(), DType::kUint8);
  EXPECT_THAT(u8.ToInt64Vector(), ElementsAre(127, 3));
  EXPECT_EQ(u8.Slice(0, 0, 1).item(), 127.0f);

  Tensor same = f.To(DType::kFloat32);
  EXPECT_FALSE(same.SharesStorage(f));
  EXPECT_THAT(same.ToVector(), ElementsAre(1.9f, -1.9f, 0.0f, 41.0f));

  // From a strided view.
  EXPECT_THAT(f.Transpose(0, 1).To(DType::kInt64).ToInt64Vector(),
              ElementsAre(1, 0, -1, 41));
  EXPECT_THAT(
      Tensor::FromInt64Vector({1, 2, 3, 4}, {2, 2}).Transpose(0, 1).ToVector(),
      ElementsAre(1, 3, 2, 4));
}

// bfloat16 tensors: conversion from float32 rounds each element as
// FloatToBf16 does (nearest, ties to even; NaN and infinities kept), back to
// float32 is exact, and views, copies and element access work as for any
// dtype.
TEST(TensorBf16Test, ConvertsBothWaysAsTheScalarRounding) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> values = {1.0f,  1.0f + 1.0f / 256, 3.14159f, -0.1f,
                                     0.0f,  -0.0f,   inf,  -inf,  1e-40f,
                                     3.4e38f, 65504.0f, -2.5f};
  const Tensor f = Tensor::FromVector(values, {3, 4});
  const Tensor b = f.To(DType::kBfloat16);
  EXPECT_EQ(b.dtype(), DType::kBfloat16);
  EXPECT_EQ(b.shape(), Shape({3, 4}));
  EXPECT_STREQ(DTypeName(b.dtype()), "bfloat16");
  EXPECT_EQ(DTypeSize(DType::kBfloat16), 2u);
  const std::vector<float> back = b.ToVector();
  ASSERT_EQ(back.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(b.data<bfloat16>()[i].bits, FloatToBf16(values[i])) << i;
    EXPECT_EQ(back[i], RoundToBf16(values[i])) << values[i];
  }
  EXPECT_TRUE(std::isnan(
      Tensor::Full({1}, std::nanf("")).To(DType::kBfloat16).item()));
  // bf16 -> float32 -> bf16 is the identity.
  const Tensor again = b.To(DType::kFloat32).To(DType::kBfloat16);
  for (int64_t i = 0; i < b.numel(); ++i) {
    EXPECT_EQ(again.data<bfloat16>()[i].bits, b.data<bfloat16>()[i].bits);
  }
}

TEST(TensorBf16Test, LargeConversionsMatchTheScalarRounding) {
  // Past the size where the conversion runs in parallel chunks, with a
  // length that is no multiple of the chunk or of a vector.
  const int64_t n = (1 << 18) + 13;
  std::vector<float> values(n);
  for (int64_t i = 0; i < n; ++i) {
    values[i] = std::ldexp(static_cast<float>(i % 1000) - 499.7f,
                           static_cast<int>(i % 61) - 30);
  }
  const Tensor b = Tensor::FromVector(values, {n}).To(DType::kBfloat16);
  const Tensor f = b.To(DType::kFloat32);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(b.data<bfloat16>()[i].bits, FloatToBf16(values[i])) << i;
    ASSERT_EQ(f.data<float>()[i], RoundToBf16(values[i])) << i;
  }
}

TEST(TensorBf16Test, ViewsCopiesAndOtherDtypes) {
  const Tensor b =
      Tensor::FromVector({1, 2, 3, 4, 5, 6}, {2, 3}).To(DType::kBfloat16);
  EXPECT_EQ(static_cast<float>(b.at<bfloat16>({1, 2})), 6.0f);
  const Tensor t = b.Transpose(0, 1);  // strided: the element-wise path
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_THAT(t.ToVector(), ElementsAre(1, 4, 2, 5, 3, 6));
  const Tensor c = t.Contiguous();
  EXPECT_EQ(c.dtype(), DType::kBfloat16);
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_THAT(c.ToVector(), ElementsAre(1, 4, 2, 5, 3, 6));
  EXPECT_THAT(b.Slice(1, 1, 3).Clone().ToVector(), ElementsAre(2, 3, 5, 6));
  EXPECT_THAT(t.To(DType::kInt64).ToInt64Vector(),
              ElementsAre(1, 4, 2, 5, 3, 6));
  EXPECT_THAT(Tensor::FromInt64Vector({-7, 300}, {2})
                  .To(DType::kBfloat16)
                  .ToVector(),
              ElementsAre(-7.0f, 300.0f));
  EXPECT_EQ(Tensor::Zeros({2}, DType::kBfloat16).ToVector(),
            std::vector<float>({0.0f, 0.0f}));
  EXPECT_EQ(Tensor::Scalar(2.5f).To(DType::kBfloat16).item(), 2.5f);
  // A broadcast copy into a strided bf16 view.
  Tensor dst = Tensor::Zeros({2, 4}, DType::kBfloat16);
  dst.Slice(1, 0, 4, 2).CopyFrom(Tensor::FromVector({7, 8}, {2, 1}));
  EXPECT_THAT(dst.ToVector(), ElementsAre(7, 0, 7, 0, 8, 0, 8, 0));
}

// A frozen tensor is a contiguous copy (here of a transposed view) whose
// storage carries FrozenForms: each form made once, under its key, and
// shared by every view of that storage; the source stays unfrozen.
TEST(TensorFrozenTest, FrozenCopyKeepsEachFormOnce) {
  const Tensor src = Tensor::FromVector({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor frozen = src.Transpose(0, 1).Frozen();
  EXPECT_TRUE(frozen.is_contiguous());
  EXPECT_EQ(frozen.shape(), Shape({3, 2}));
  EXPECT_EQ(frozen.ToVector(), std::vector<float>({1, 4, 2, 5, 3, 6}));
  EXPECT_FALSE(frozen.SharesStorage(src));
  EXPECT_EQ(src.frozen_forms(), nullptr);
  EXPECT_EQ(Tensor().frozen_forms(), nullptr);
  FrozenForms* forms = frozen.frozen_forms();
  ASSERT_NE(forms, nullptr);
  EXPECT_EQ(frozen.View({6}).frozen_forms(), forms);
  int made = 0;
  const auto sum = [&] {
    ++made;
    return std::make_unique<float>(frozen.ToVector()[0] + frozen.ToVector()[1]);
  };
  const float& a = forms->Get<float>("sum", sum);
  const float& b = forms->Get<float>("sum", sum);
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(a, 5.0f);
  EXPECT_EQ(made, 1);
  forms->Get<int>("other", [] { return std::make_unique<int>(7); });
  EXPECT_EQ(forms->size(), 2u);
  // A frozen copy of a frozen tensor has forms of its own.
  EXPECT_EQ(frozen.Frozen().frozen_forms()->size(), 0u);
  EXPECT_EQ(frozen.Clone().frozen_forms(), nullptr);
}

TEST(TensorCopyTest, CopyFromBroadcastsIntoStridedView) {
  Tensor dst = Tensor::Zeros({3, 4});
  Tensor cols = dst.Slice(1, 0, 4, 2);  // columns 0 and 2: [3, 2]
  cols.CopyFrom(Tensor::FromVector({7, 8}, {2}));
  EXPECT_THAT(dst.ToVector(), ElementsAre(7, 0, 8, 0, 7, 0, 8, 0, 7, 0, 8, 0));

  // A [3, 1] source broadcast along a transposed [4, 3] view.
  Tensor dst2 = Tensor::Zeros({3, 4});
  dst2.Transpose(0, 1).CopyFrom(Tensor::FromVector({1, 2, 3}, {3}));
  EXPECT_THAT(dst2.ToVector(), ElementsAre(1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
}

TEST(TensorCopyTest, CopyFromStridedSourceAndOtherDtype) {
  Tensor dst = Tensor::Empty({3, 2});
  dst.CopyFrom(Iota({2, 3}).Transpose(0, 1));
  EXPECT_THAT(dst.ToVector(), ElementsAre(0, 3, 1, 4, 2, 5));

  dst.CopyFrom(Tensor::FromInt64Vector({1, 2, 3, 4, 5, 6}, {3, 2}));
  EXPECT_THAT(dst.ToVector(), ElementsAre(1, 2, 3, 4, 5, 6));

  // Contiguous slice with an offset on both sides takes the memcpy path.
  Tensor big = Iota({4, 3});
  Tensor target = Tensor::Zeros({4, 3});
  target.Slice(0, 2, 4).CopyFrom(big.Slice(0, 0, 2));
  EXPECT_THAT(target.ToVector(),
              ElementsAre(0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5));
}

TEST(TensorCopyTest, FillStridedView) {
  Tensor x = Tensor::Zeros({3, 4});
  x.Transpose(0, 1).Slice(0, 1, 4, 2).Fill(5);  // columns 1 and 3
  EXPECT_THAT(x.ToVector(), ElementsAre(0, 5, 0, 5, 0, 5, 0, 5, 0, 5, 0, 5));
  x.Select(0, 1).Fill(-1);
  EXPECT_THAT(x.ToVector(),
              ElementsAre(0, 5, 0, 5, -1, -1, -1, -1, 0, 5, 0, 5));
}

// ---- Element access ---------------------------------------------------------

TEST(TensorAccessTest, AtOnViews) {
  Tensor x = Iota({2, 3, 4});
  EXPECT_EQ(x.at<float>({1, 2, 3}), 23);
  EXPECT_EQ(x.Slice(2, 1, 4, 2).at<float>({1, 1, 1}), 19);
  EXPECT_EQ(x.Permute({2, 1, 0}).at<float>({3, 0, 1}), 15);
  Tensor i = Tensor::FromInt64Vector({10, 11, 12, 13, 14, 15}, {3, 2});
  EXPECT_EQ(i.Transpose(0, 1).at<int64_t>({1, 2}), 15);
}

TEST(TensorAccessTest, Item) {
  EXPECT_EQ(Tensor::Scalar(-2).item(), -2);
  EXPECT_EQ(Tensor::FromVector({9}, {1, 1}).item(), 9);
  EXPECT_EQ(Iota({3, 4}).Slice(0, 2, 3).Slice(1, 3, 4).item(), 11);
  EXPECT_EQ(Tensor::FromInt64Vector({6}, {1}).item(), 6.0f);
  EXPECT_EQ(Tensor::Zeros({1}, DType::kInt32).item(), 0.0f);
}

TEST(TensorAccessTest, ToVectorOfIntAndToInt64VectorOfFloat) {
  EXPECT_THAT(Tensor::FromInt64Vector({4, 5}, {2}).ToVector(),
              ElementsAre(4.0f, 5.0f));
  EXPECT_THAT(Tensor::FromVector({2.5f, -0.5f}, {2}).ToInt64Vector(),
              ElementsAre(2, 0));
}

TEST(TensorPrintTest, ToStringShowsShapeDtypeAndValues) {
  Tensor x = Tensor::FromVector({1, 2, 3, 4, 5, 6}, {2, 3});
  const std::string s = x.ToString();
  EXPECT_THAT(s, HasSubstr("shape=[2, 3]"));
  EXPECT_THAT(s, HasSubstr("dtype=float32"));
  EXPECT_THAT(s, HasSubstr("[1, 2, 3]"));
  EXPECT_THAT(s, HasSubstr("[4, 5, 6]"));

  std::ostringstream os;
  os << Tensor::FromInt64Vector({7, 8}, {2});
  EXPECT_THAT(os.str(), HasSubstr("shape=[2]"));
  EXPECT_THAT(os.str(), HasSubstr("dtype=int64"));

  EXPECT_THAT(Tensor::Zeros({10, 10}).ToString(), HasSubstr("(36 more)"));
  EXPECT_THAT(Tensor::Scalar(2.5f).ToString(), HasSubstr("shape=[]"));
  EXPECT_THAT(Tensor::Scalar(2.5f).ToString(), HasSubstr("values=[2.5])"));
}

TEST(TensorPrintTest, EmptyTensorHasBalancedBrackets) {
  EXPECT_EQ(Tensor::Zeros({0, 3}).ToString(),
            "Tensor(shape=[0, 3], dtype=float32, values=[])");
}

// ---- Threads ----------------------------------------------------------------

TEST(ThreadsTest, SetAndGetNumThreads) {
  const int before = GetNumThreads();
  SetNumThreads(1);
  EXPECT_EQ(GetNumThreads(), 1);
  SetNumThreads(3);
  EXPECT_EQ(GetNumThreads(), 3);
  EXPECT_EQ(Eigen::nbThreads(), 3);
  SetNumThreads(0);
  EXPECT_EQ(GetNumThreads(), omp_get_num_procs());
  SetNumThreads(before);
}

// ---- Death tests ------------------------------------------------------------

class TensorDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(TensorDeathTest, ViewOfNonContiguous) {
  Tensor t = Iota({2, 3}).Transpose(0, 1);
  EXPECT_DEATH(t.View({6}),
               "View of non-contiguous tensor \\[3, 2\\] as \\[6\\]; use "
               "Reshape\\(\\)");
}

TEST_F(TensorDeathTest, ViewWithWrongSize) {
  Tensor t = Iota({2, 3});
  EXPECT_DEATH(t.View({4}),
               "View of tensor \\[2, 3\\]: cannot view 6 elements as shape "
               "\\[4\\] \\(4 elements\\)");
  EXPECT_DEATH(t.View({-1, 4}),
               "View of tensor \\[2, 3\\]: cannot view 6 elements as shape "
               "\\[-1, 4\\]");
}

TEST_F(TensorDeathTest, SelectOutOfRange) {
  Tensor t = Iota({3, 4});
  EXPECT_DEATH(t.Select(0, 3),
               "Select index 3 out of range for dimension 0 of shape "
               "\\[3, 4\\]");
  EXPECT_DEATH(t.Select(1, -1),
               "Select index -1 out of range for dimension 1 of shape "
               "\\[3, 4\\]");
  EXPECT_DEATH(t.Select(2, 0), "axis 2 is out of range for shape \\[3, 4\\]");
}

TEST_F(TensorDeathTest, SliceOutOfRange) {
  Tensor t = Iota({3, 4});
  EXPECT_DEATH(t.Slice(1, 5, 6),
               "Slice start 5 out of range for dimension 1 of shape "
               "\\[3, 4\\]");
  EXPECT_DEATH(t.Slice(0, -1, 2),
               "Slice start -1 out of range for dimension 0 of shape "
               "\\[3, 4\\]");
  EXPECT_DEATH(t.Slice(0, 2, 1), "Slice end 1 before start 2");
  EXPECT_DEATH(t.Slice(0, 0, 2, 0), "Slice step must be positive");
}

TEST_F(TensorDeathTest, AtOutOfRange) {
  Tensor t = Iota({2, 3});
  EXPECT_DEATH(t.at<float>({1, 3}),
               "index 3 out of range for dimension 1 of shape \\[2, 3\\]");
  EXPECT_DEATH(t.at<float>({-1, 0}),
               "index -1 out of range for dimension 0 of shape \\[2, 3\\]");
  EXPECT_DEATH(t.at<float>({1}),
               "index of rank 1 for tensor of shape \\[2, 3\\]");
}

TEST_F(TensorDeathTest, ExpandToIncompatibleShape) {
  Tensor t = Iota({2, 3});
  EXPECT_DEATH(t.Expand({4, 3}),
               "cannot expand shape \\[2, 3\\] to \\[4, 3\\]");
  EXPECT_DEATH(t.Expand({3}), "cannot expand shape \\[2, 3\\] to \\[3\\]");
}

TEST_F(TensorDeathTest, DtypeMismatch) {
  Tensor f = Tensor::Zeros({2});
  EXPECT_DEATH(f.data<int64_t>(), "tensor of dtype float32 accessed as int64");
  Tensor i = Tensor::Zeros({2}, DType::kInt64);
  EXPECT_DEATH(i.data(), "tensor of dtype int64 accessed as float32");
  EXPECT_DEATH(i.Fill(1), "Fill of a int64 tensor");
  Tensor b = Tensor::Zeros({2}, DType::kBfloat16);
  EXPECT_DEATH(b.data(), "tensor of dtype bfloat16 accessed as float32");
}

TEST_F(TensorDeathTest, OtherMisuse) {
  EXPECT_DEATH(Tensor::FromVector({1, 2, 3, 4, 5}, {2, 3}),
               "FromVector: 5 values for shape \\[2, 3\\]");
  EXPECT_DEATH(Iota({2}).item(),
               "item\\(\\) needs a one-element tensor, got shape \\[2\\]");
  EXPECT_DEATH(Iota({2, 3}).Squeeze(0),
               "Squeeze of dimension 0 of shape \\[2, 3\\]");
  EXPECT_DEATH(Iota({2, 3}).Permute({0, 0}),
               "Permute: axis 0 repeated for shape \\[2, 3\\]");
  EXPECT_DEATH(Tensor::Empty({2, -3}),
               "negative dimension in shape \\[2, -3\\]");
}

}  // namespace
}  // namespace dive
