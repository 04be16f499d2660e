#include "tensor/shape.h"

#include <cstdint>
#include <sstream>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dive {
namespace {

using ::testing::HasSubstr;

// ---- Basics -----------------------------------------------------------------

TEST(ShapeTest, RankAndNumel) {
  const Shape s{256, 1, 28, 28};
  EXPECT_EQ(s.rank(), 4);
  EXPECT_EQ(s.numel(), 200704);
  EXPECT_EQ(Shape({7}).numel(), 7);
  EXPECT_EQ(Shape({2, 3, 4}).numel(), 24);
}

TEST(ShapeTest, ScalarHasRankZeroAndOneElement) {
  const Shape s;
  EXPECT_EQ(s.rank(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(Shape{}.numel(), 1);
}

TEST(ShapeTest, ZeroDimensionGivesZeroElements) {
  EXPECT_EQ(Shape({3, 0, 2}).numel(), 0);
  EXPECT_EQ(Shape({0}).numel(), 0);
}

TEST(ShapeTest, ConstructFromSpan) {
  const int64_t dims[] = {4, 5, 6};
  const Shape s{absl::Span<const int64_t>(dims)};
  EXPECT_EQ(s, Shape({4, 5, 6}));
  EXPECT_EQ(s.numel(), 120);
}

TEST(ShapeTest, IndexingWithNegativeAxes) {
  Shape s{256, 1, 28, 30};
  EXPECT_EQ(s[0], 256);
  EXPECT_EQ(s[3], 30);
  EXPECT_EQ(s[-1], 30);
  EXPECT_EQ(s[-2], 28);
  EXPECT_EQ(s[-3], 1);
  EXPECT_EQ(s[-4], 256);
  s[-2] = 5;
  s[1] = 9;
  EXPECT_EQ(s, Shape({256, 9, 5, 30}));
}

TEST(ShapeTest, CanonicalAxis) {
  const Shape s{2, 3, 4};
  EXPECT_EQ(s.CanonicalAxis(0), 0);
  EXPECT_EQ(s.CanonicalAxis(2), 2);
  EXPECT_EQ(s.CanonicalAxis(-1), 2);
  EXPECT_EQ(s.CanonicalAxis(-2), 1);
  EXPECT_EQ(s.CanonicalAxis(-3), 0);
}

TEST(ShapeTest, PushBackAndIteration) {
  Shape s;
  s.push_back(3);
  s.push_back(0);
  s.push_back(5);
  EXPECT_EQ(s.rank(), 3);
  int64_t sum = 0;
  for (int64_t d : s) sum += d;
  EXPECT_EQ(sum, 8);
  EXPECT_EQ(s.dims(), Dims({3, 0, 5}));
}

TEST(ShapeTest, Equality) {
  EXPECT_TRUE(Shape({2, 3}) == Shape({2, 3}));
  EXPECT_FALSE(Shape({2, 3}) != Shape({2, 3}));
  EXPECT_TRUE(Shape({2, 3}) != Shape({3, 2}));
  EXPECT_TRUE(Shape({2, 3}) != Shape({2, 3, 1}));
  EXPECT_TRUE(Shape() != Shape({1}));
}

TEST(ShapeTest, ToStringAndStream) {
  EXPECT_EQ(Shape({2, 3, 4}).ToString(), "[2, 3, 4]");
  EXPECT_EQ(Shape({7}).ToString(), "[7]");
  EXPECT_EQ(Shape().ToString(), "[]");
  std::ostringstream os;
  os << Shape({256, 1, 28, 28});
  EXPECT_EQ(os.str(), "[256, 1, 28, 28]");
}

TEST(ShapeTest, ContiguousStrides) {
  EXPECT_EQ(ContiguousStrides(Shape({2, 3, 4})), Dims({12, 4, 1}));
  EXPECT_EQ(ContiguousStrides(Shape({5})), Dims({1}));
  EXPECT_EQ(ContiguousStrides(Shape({4, 1, 2})), Dims({2, 2, 1}));
  EXPECT_EQ(ContiguousStrides(Shape({2, 0, 3})), Dims({0, 3, 1}));
  EXPECT_TRUE(ContiguousStrides(Shape()).empty());
}

TEST(ShapeDeathTest, CanonicalAxisOutOfRange) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const Shape s{2, 3, 4};
  EXPECT_DEATH(s.CanonicalAxis(3),
               "axis 3 is out of range for shape \\[2, 3, 4\\] \\(rank 3\\)");
  EXPECT_DEATH(s.CanonicalAxis(-4),
               "axis -4 is out of range for shape \\[2, 3, 4\\] \\(rank 3\\)");
  EXPECT_DEATH(Shape().CanonicalAxis(0),
               "axis 0 is out of range for shape \\[\\] \\(rank 0\\)");
  EXPECT_DEATH(s[5], "axis 5 is out of range for shape \\[2, 3, 4\\]");
}

// ---- BroadcastShapes --------------------------------------------------------

Shape MustBroadcast(const Shape& a, const Shape& b) {
  absl::StatusOr<Shape> s = BroadcastShapes(a, b);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : Shape();
}

TEST(BroadcastShapesTest, EqualShapes) {
  EXPECT_EQ(MustBroadcast({2, 3}, {2, 3}), Shape({2, 3}));
  EXPECT_EQ(MustBroadcast({}, {}), Shape());
}

TEST(BroadcastShapesTest, RankExtension) {
  EXPECT_EQ(MustBroadcast({3}, {2, 3}), Shape({2, 3}));
  EXPECT_EQ(MustBroadcast({2, 3}, {3}), Shape({2, 3}));
  EXPECT_EQ(MustBroadcast({5, 4}, {7, 6, 5, 4}), Shape({7, 6, 5, 4}));
}

TEST(BroadcastShapesTest, ScalarBroadcastsToAnything) {
  EXPECT_EQ(MustBroadcast({}, {2, 3}), Shape({2, 3}));
  EXPECT_EQ(MustBroadcast({4}, {}), Shape({4}));
}

TEST(BroadcastShapesTest, SizeOneDimensionsStretch) {
  EXPECT_EQ(MustBroadcast({1, 3}, {2, 1}), Shape({2, 3}));
  EXPECT_EQ(MustBroadcast({2, 1, 3}, {4, 1}), Shape({2, 4, 3}));
  EXPECT_EQ(MustBroadcast({4, 1}, {2, 1, 3}), Shape({2, 4, 3}));
  EXPECT_EQ(MustBroadcast({8, 1, 6, 1}, {7, 1, 5}), Shape({8, 7, 6, 5}));
  EXPECT_EQ(MustBroadcast({1, 1}, {1}), Shape({1, 1}));
}

TEST(BroadcastShapesTest, ZeroSizedDimensions) {
  // NumPy: a 0 pairs with 0 or 1 and gives 0.
  EXPECT_EQ(MustBroadcast({0, 3}, {1, 3}), Shape({0, 3}));
  EXPECT_EQ(MustBroadcast({1}, {0}), Shape({0}));
  EXPECT_FALSE(BroadcastShapes({0}, {2}).ok());
}

TEST(BroadcastShapesTest, IncompatibleShapesNameBothShapes) {
  absl::StatusOr<Shape> s = BroadcastShapes({2, 3}, {4});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.status().message(),
            "shapes [2, 3] and [4] cannot be broadcast: dimension -1 is 3 vs "
            "4");

  s = BroadcastShapes({2, 3, 4}, {5, 4});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("[2, 3, 4]"));
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("[5, 4]"));
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("dimension -2 is 3 vs 5"));
}

// ---- InferShape -------------------------------------------------------------

TEST(InferShapeTest, NoInferredDimension) {
  absl::StatusOr<Shape> s = InferShape({2, 3}, 6);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, Shape({2, 3}));
  s = InferShape({}, 1);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, Shape());
}

TEST(InferShapeTest, ResolvesMinusOneAnywhere) {
  EXPECT_EQ(*InferShape({-1}, 12), Shape({12}));
  EXPECT_EQ(*InferShape({-1, 4}, 12), Shape({3, 4}));
  EXPECT_EQ(*InferShape({2, -1, 3}, 24), Shape({2, 4, 3}));
  EXPECT_EQ(*InferShape({6, -1}, 6), Shape({6, 1}));
  EXPECT_EQ(*InferShape({-1, 3}, 0), Shape({0, 3}));
}

TEST(InferShapeTest, SizeMismatchIsAnError) {
  absl::StatusOr<Shape> s = InferShape({2, 5}, 12);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.status().message(),
            "cannot view 12 elements as shape [2, 5] (10 elements)");
}

TEST(InferShapeTest, IndivisibleMinusOneIsAnError) {
  absl::StatusOr<Shape> s = InferShape({-1, 5}, 12);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.status().message(), "cannot view 12 elements as shape [-1, 5]");
  // With a zero-sized known part the -1 is ambiguous.
  EXPECT_FALSE(InferShape({0, -1}, 0).ok());
}

TEST(InferShapeTest, TwoMinusOnesIsAnError) {
  absl::StatusOr<Shape> s = InferShape({-1, 2, -1}, 12);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.status().message(),
            "shape [-1, 2, -1] has more than one -1 dimension");
}

TEST(InferShapeTest, OtherNegativeDimensionIsAnError) {
  absl::StatusOr<Shape> s = InferShape({-2, 6}, 12);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.status().message(), "shape [-2, 6] has a negative dimension");
}

}  // namespace
}  // namespace dive
