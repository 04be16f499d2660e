#include "datasets/dataset.h"

#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tensor/tensor.h"

namespace dive::data {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatEq;
using ::testing::Pointwise;

InMemoryDataset TwoByTwo() {
  // Two 1 x 2 x 2 images.
  return InMemoryDataset({0, 255, 51, 102, 10, 20, 30, 40}, {3, 7},
                         /*channels=*/1, /*height=*/2, /*width=*/2);
}

TEST(InMemoryDatasetTest, Shapes) {
  InMemoryDataset d = TwoByTwo();
  EXPECT_EQ(d.size(), 2);
  EXPECT_EQ(d.channels(), 1);
  EXPECT_EQ(d.height(), 2);
  EXPECT_EQ(d.width(), 2);
  EXPECT_EQ(d.image_size(), 4);
  EXPECT_EQ(d.label(1), 7);
  EXPECT_EQ(d.image_bytes(1)[3], 40);
  EXPECT_THAT(d.labels(), ElementsAre(3, 7));
}

TEST(InMemoryDatasetTest, GetScalesToUnitInterval) {
  const InMemoryDataset d = TwoByTwo();
  const Dataset& base = d;  // through the interface
  Example e = base.Get(0);
  EXPECT_EQ(e.image.shape(), (Shape{1, 2, 2}));
  EXPECT_EQ(e.label, 3);
  EXPECT_THAT(e.image.ToVector(),
              Pointwise(FloatEq(), {0.0f, 1.0f, 0.2f, 0.4f}));
}

TEST(InMemoryDatasetTest, GatherImagesAndLabels) {
  InMemoryDataset d = TwoByTwo();
  Tensor x = d.GatherImages({1, 0, 1});
  EXPECT_EQ(x.shape(), (Shape{3, 1, 2, 2}));
  EXPECT_EQ(x.dtype(), DType::kFloat32);
  EXPECT_FLOAT_EQ(x.at<float>({0, 0, 1, 1}), 40.0f / 255.0f);
  EXPECT_FLOAT_EQ(x.at<float>({1, 0, 0, 1}), 1.0f);
  EXPECT_FLOAT_EQ(x.at<float>({2, 0, 0, 0}), 10.0f / 255.0f);
  Tensor y = d.GatherLabels({1, 0, 1});
  EXPECT_EQ(y.dtype(), DType::kInt64);
  EXPECT_THAT(y.ToInt64Vector(), ElementsAre(7, 3, 7));
}

TEST(InMemoryDatasetTest, CopiesShareData) {
  InMemoryDataset a = TwoByTwo();
  InMemoryDataset b = a;
  EXPECT_EQ(a.image_bytes(0), b.image_bytes(0));
}

TEST(InMemoryDatasetDeathTest, SizeMismatch) {
  EXPECT_DEATH(InMemoryDataset({1, 2, 3}, {0}, 1, 2, 2), "3 image bytes");
}

TEST(InMemoryDatasetDeathTest, IndexOutOfRange) {
  InMemoryDataset d = TwoByTwo();
  EXPECT_DEATH(d.Get(2), "out of range");
}

InMemoryDataset Four() {
  // Four 1 x 1 x 2 images with labels 0..3.
  return InMemoryDataset({0, 1, 10, 11, 20, 21, 30, 31}, {0, 1, 2, 3},
                         /*channels=*/1, /*height=*/1, /*width=*/2);
}

TEST(SubsetDatasetTest, ViewsARangeWithoutCopying) {
  const auto all = std::make_shared<InMemoryDataset>(Four());
  const SubsetDataset middle(all, 1, 3);
  EXPECT_EQ(middle.size(), 2);
  EXPECT_EQ(middle.ImageShape(), (Shape{1, 1, 2}));
  EXPECT_EQ(middle.Get(0).label, 1);
  EXPECT_FLOAT_EQ(middle.Get(1).image.at<float>({0, 0, 1}), 21.0f / 255.0f);
  const Batch batch = middle.Gather({1, 0, 1});
  EXPECT_THAT(batch.labels.ToInt64Vector(), ElementsAre(2, 1, 2));
  EXPECT_THAT(batch.indices, ElementsAre(1, 0, 1));  // the view's indices
  EXPECT_FLOAT_EQ(batch.images.at<float>({1, 0, 0, 0}), 10.0f / 255.0f);
  // A view of a view, and an empty one.
  EXPECT_EQ(SubsetDataset(std::make_shared<SubsetDataset>(middle), 1, 2)
                .Get(0)
                .label,
            2);
  EXPECT_EQ(SubsetDataset(all, 4, 4).size(), 0);
}

TEST(SubsetDatasetTest, HeadIsTheFirstExamplesOrAll) {
  const auto all = std::make_shared<InMemoryDataset>(Four());
  EXPECT_EQ(Head(all, 2)->size(), 2);
  EXPECT_EQ(Head(all, 2)->Get(1).label, 1);
  EXPECT_EQ(Head(all, 0)->size(), 4);   // no limit
  EXPECT_EQ(Head(all, 10)->size(), 4);  // more than it holds
}

TEST(SubsetDatasetDeathTest, RangeAndIndexChecked) {
  const auto all = std::make_shared<InMemoryDataset>(Four());
  EXPECT_DEATH(SubsetDataset(all, 2, 5), "not a range of a dataset of 4");
  EXPECT_DEATH(SubsetDataset(all, 3, 2), "not a range");
  const SubsetDataset first(all, 0, 2);
  EXPECT_DEATH(first.Get(2), "out of range");
  EXPECT_DEATH(first.Gather({0, 2}), "out of range");
}

}  // namespace
}  // namespace dive::data
