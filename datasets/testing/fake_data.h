// File: datasets/testing/fake_data.h
// -----------------------------------------------------------------------------
//
// Tiny stand-ins for Fashion-MNIST for the tools' tests: images with a rule a
// linear model can learn (the image of class c has a bright horizontal band
// whose position depends on c, on a noisy background), in memory or written
// as the four IDX files `LoadFashionMnist` reads.
//
// Example:
//
//   dive::data::InMemoryDataset train = dive::data::testing::FakeImages(512,
//   1); absl::Status s = dive::data::testing::WriteFakeFashionMnist(
//       "/tmp/data", {.train = 64, .test = 32});

#ifndef DATASETS_TESTING_FAKE_DATA_H_
#define DATASETS_TESTING_FAKE_DATA_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "datasets/dataset.h"

namespace dive::data::testing {

// FakeImages()
//
// `n` one-channel height x width images with labels in [0, 10) drawn from
// `seed`; the same arguments give the same bytes.
InMemoryDataset FakeImages(int64_t n, uint64_t seed, int64_t height = 28,
                           int64_t width = 28);

struct FakeDataOptions {
  int64_t train = 64;
  int64_t test = 32;
  int64_t height = 28;
  int64_t width = 28;
  // Write `.gz` files (else raw ones).
  bool gzip = false;
  // Labels in the training label file; < 0: as many as images.
  int64_t train_labels = -1;
  uint64_t seed = 0;
};

// WriteFakeFashionMnist()
//
// Creates `dir` if needed and writes train-{images,labels} and
// t10k-{images,labels} IDX files there.
absl::Status WriteFakeFashionMnist(const std::string& dir,
                                   const FakeDataOptions& options);

}  // namespace dive::data::testing

#endif  // DATASETS_TESTING_FAKE_DATA_H_
