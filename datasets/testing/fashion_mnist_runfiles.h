// File: datasets/testing/fashion_mnist_runfiles.h
// -----------------------------------------------------------------------------
//
// The real Fashion-MNIST files (Debian's dataset-fashion-mnist) in a test's
// runfiles, for the tests that train or check on them. This library brings
// them in itself (`data = ["@fashion_mnist//:files"]`).
//
// Example:
//
//   absl::StatusOr<InMemoryDataset> train =
//       LoadFashionMnist(FashionMnistRunfilesDir(), Split::kTrain);

#ifndef DATASETS_TESTING_FASHION_MNIST_RUNFILES_H_
#define DATASETS_TESTING_FASHION_MNIST_RUNFILES_H_

#include <string>

namespace dive::data::testing {

// FashionMnistRunfilesDir()
//
// The directory holding the four IDX files in this test's runfiles
// ("<runfiles>/fashion_mnist"); "" after a failed expectation (gtest's
// EXPECT, naming the error) when the runfiles cannot be found.
std::string FashionMnistRunfilesDir();

}  // namespace dive::data::testing

#endif  // DATASETS_TESTING_FASHION_MNIST_RUNFILES_H_
