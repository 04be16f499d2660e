#include "datasets/fashion_mnist.h"

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "datasets/idx.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dive::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A fresh directory under TempDir() for one test.
std::string MakeDir(const std::string& name) {
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/fashion_mnist_test_", name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Writes a split of `n` 3 x 2 images with the given labels.
void WriteSplit(const std::string& dir, const std::string& prefix, bool gzip,
                const std::vector<uint8_t>& labels, int64_t n_images = -1) {
  const int64_t n =
      n_images < 0 ? static_cast<int64_t>(labels.size()) : n_images;
  std::vector<uint8_t> images(n * 3 * 2);
  for (size_t i = 0; i < images.size(); ++i)
    images[i] = static_cast<uint8_t>(i);
  const std::string suffix = gzip ? ".gz" : "";
  ASSERT_TRUE(
      WriteIdx(absl::StrCat(dir, "/", prefix, "-images-idx3-ubyte", suffix),
               {n, 3, 2}, images, gzip)
          .ok());
  ASSERT_TRUE(
      WriteIdx(absl::StrCat(dir, "/", prefix, "-labels-idx1-ubyte", suffix),
               {static_cast<int64_t>(labels.size())}, labels, gzip)
          .ok());
}

TEST(FashionMnistTest, ClassNames) {
  EXPECT_THAT(FashionMnistClassNames(),
              ElementsAre("t-shirt", "trouser", "pullover", "dress", "coat",
                          "sandal", "shirt", "sneaker", "bag", "ankle boot"));
}

TEST(FashionMnistTest, LoadsGzipTrainAndRawTest) {
  const std::string dir = MakeDir("mixed");
  WriteSplit(dir, "train", /*gzip=*/true, {9, 0, 3});
  WriteSplit(dir, "t10k", /*gzip=*/false, {1, 2});

  absl::StatusOr<InMemoryDataset> train = LoadFashionMnist(dir, Split::kTrain);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->size(), 3);
  EXPECT_EQ(train->channels(), 1);
  EXPECT_EQ(train->height(), 3);
  EXPECT_EQ(train->width(), 2);
  EXPECT_THAT(train->labels(), ElementsAre(9, 0, 3));
  EXPECT_EQ(train->image_bytes(2)[5], 17);

  // A trailing slash on the directory works too.
  absl::StatusOr<InMemoryDataset> test =
      LoadFashionMnist(dir + "/", Split::kTest);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_THAT(test->labels(), ElementsAre(1, 2));
}

TEST(FashionMnistTest, MissingFilesNameBothCandidates) {
  const std::string dir = MakeDir("empty");
  absl::StatusOr<InMemoryDataset> d = LoadFashionMnist(dir, Split::kTest);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(d.status().message(),
              HasSubstr(dir + "/t10k-images-idx3-ubyte.gz"));
  EXPECT_THAT(d.status().message(), HasSubstr(dir + "/t10k-images-idx3-ubyte"));
}

TEST(FashionMnistTest, CountMismatchNamesBothFiles) {
  const std::string dir = MakeDir("mismatch");
  WriteSplit(dir, "train", true, {1, 2, 3}, /*n_images=*/4);
  absl::StatusOr<InMemoryDataset> d = LoadFashionMnist(dir, Split::kTrain);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.status().message(),
            absl::StrCat("file ", dir, "/train-images-idx3-ubyte.gz has 4 ",
                         "images but file ", dir,
                         "/train-labels-idx1-ubyte.gz has 3 labels"));
}

TEST(FashionMnistTest, LabelOutOfRangeNamesFileAndIndex) {
  const std::string dir = MakeDir("bad_label");
  WriteSplit(dir, "t10k", false, {0, 9, 10, 1});
  absl::StatusOr<InMemoryDataset> d = LoadFashionMnist(dir, Split::kTest);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(), HasSubstr(dir + "/t10k-labels-idx1-ubyte"));
  EXPECT_THAT(d.status().message(), HasSubstr("label 10 at index 2"));
}

TEST(FashionMnistTest, ImagesMustBeRank3) {
  const std::string dir = MakeDir("rank");
  ASSERT_TRUE(WriteIdx(dir + "/train-images-idx3-ubyte", {2, 4},
                       std::vector<uint8_t>(8), false)
                  .ok());
  ASSERT_TRUE(
      WriteIdx(dir + "/train-labels-idx1-ubyte", {2}, {0, 1}, false).ok());
  absl::StatusOr<InMemoryDataset> d = LoadFashionMnist(dir, Split::kTrain);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(), HasSubstr("rank 3"));
  EXPECT_THAT(d.status().message(), HasSubstr("train-images-idx3-ubyte"));
}

TEST(FashionMnistTest, LabelsMustBeRank1) {
  const std::string dir = MakeDir("label_rank");
  ASSERT_TRUE(
      WriteIdx(dir + "/t10k-images-idx3-ubyte.gz", {2, 1, 1}, {0, 1}, true)
          .ok());
  ASSERT_TRUE(
      WriteIdx(dir + "/t10k-labels-idx1-ubyte.gz", {2, 1}, {0, 1}, true).ok());
  absl::StatusOr<InMemoryDataset> d = LoadFashionMnist(dir, Split::kTest);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(), HasSubstr("rank 1"));
}

TEST(FashionMnistTest, IdxErrorsPropagate) {
  const std::string dir = MakeDir("corrupt");
  WriteSplit(dir, "train", false, {1, 2});
  // Truncate the image file's payload.
  std::filesystem::resize_file(dir + "/train-images-idx3-ubyte", 16 + 5);
  absl::StatusOr<InMemoryDataset> d = LoadFashionMnist(dir, Split::kTrain);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(d.status().message(),
              HasSubstr("expected 12 bytes of data, found 5"));
}

}  // namespace
}  // namespace dive::data
