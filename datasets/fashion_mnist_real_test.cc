// Reads the real Fashion-MNIST files (Debian's dataset-fashion-mnist), which
// //datasets/testing:fashion_mnist_runfiles brings in as runfiles.

#include <array>
#include <string>

#include "datasets/fashion_mnist.h"
#include "datasets/testing/fashion_mnist_runfiles.h"
#include "gtest/gtest.h"

namespace dive::data {
namespace {

void ExpectSplit(Split split, int64_t n) {
  absl::StatusOr<InMemoryDataset> d =
      LoadFashionMnist(testing::FashionMnistRunfilesDir(), split);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->size(), n);
  EXPECT_EQ(d->channels(), 1);
  EXPECT_EQ(d->height(), 28);
  EXPECT_EQ(d->width(), 28);
  std::array<int64_t, kFashionMnistNumClasses> histogram{};
  for (int64_t label : d->labels()) {
    ASSERT_GE(label, 0);
    ASSERT_LT(label, kFashionMnistNumClasses);
    ++histogram[label];
  }
  for (int c = 0; c < kFashionMnistNumClasses; ++c) {
    EXPECT_EQ(histogram[c], n / kFashionMnistNumClasses) << "class " << c;
  }
}

TEST(FashionMnistRealTest, Train) { ExpectSplit(Split::kTrain, 60000); }

TEST(FashionMnistRealTest, Test) { ExpectSplit(Split::kTest, 10000); }

TEST(FashionMnistRealTest, FirstTrainingExampleIsAnAnkleBoot) {
  absl::StatusOr<InMemoryDataset> d =
      LoadFashionMnist(testing::FashionMnistRunfilesDir(), Split::kTrain);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->label(0), 9);
  EXPECT_EQ(FashionMnistClassNames()[d->label(0)], "ankle boot");
  // Not a blank image.
  int64_t ink = 0;
  for (int64_t i = 0; i < d->image_size(); ++i) ink += d->image_bytes(0)[i];
  EXPECT_GT(ink, 0);
}

TEST(FashionMnistRealTest, RelativeRunfilesPathWorks) {
  // From the test's working directory ($TEST_SRCDIR/dive), Bazel 4's default
  // --legacy_external_runfiles also places the files under external/.
  absl::StatusOr<InMemoryDataset> d =
      LoadFashionMnist("external/fashion_mnist", Split::kTest);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->size(), 10000);
}

}  // namespace
}  // namespace dive::data
