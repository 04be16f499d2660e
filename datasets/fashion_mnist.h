// File: datasets/fashion_mnist.h
// -----------------------------------------------------------------------------
//
// Loads Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): 28 x 28 grayscale
// images of clothing in 10 classes, 60000 for training and 10000 for testing,
// stored as four IDX files:
//
//   train-images-idx3-ubyte   train-labels-idx1-ubyte
//   t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte
//
// each either gzip-compressed (with a `.gz` suffix, as Debian's
// dataset-fashion-mnist package installs them) or raw. The same layout is used
// by the original MNIST, which `LoadIdxClassification` reads too.
//
// Example:
//
//   absl::StatusOr<dive::data::InMemoryDataset> train =
//   dive::data::LoadFashionMnist(
//       dive::data::kDefaultFashionMnistDir, dive::data::Split::kTrain);
//   if (!train.ok()) return train.status();
//   train->size();                                     // 60000
//   dive::data::FashionMnistClassNames()[train->label(0)];   // "ankle boot"

#ifndef DATASETS_FASHION_MNIST_H_
#define DATASETS_FASHION_MNIST_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "datasets/dataset.h"

namespace dive::data {

// Where Debian's dataset-fashion-mnist package installs the files.
inline constexpr char kDefaultFashionMnistDir[] =
    "/usr/share/datasets/fashion-mnist";

// The number of Fashion-MNIST classes.
inline constexpr int kFashionMnistNumClasses = 10;

enum class Split { kTrain, kTest };

// FashionMnistClassNames()
//
// The class names by label: "t-shirt", "trouser", "pullover", "dress",
// "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot".
const std::array<std::string_view, kFashionMnistNumClasses>&
FashionMnistClassNames();

// LoadFashionMnist()
//
// Loads one split from `dir`: `train-*` for kTrain, `t10k-*` for kTest. For
// each file the name with `.gz` is tried first, then the raw name; NotFound
// names both when neither exists. Other errors are those of
// `LoadIdxClassification`. The result has images [N, 1, 28, 28].
absl::StatusOr<InMemoryDataset> LoadFashionMnist(const std::string& dir,
                                                 Split split);

// LoadIdxClassification()
//
// Loads an image classification dataset from an IDX image file (rank 3:
// [N, H, W], stored as one-channel images) and an IDX label file (rank 1:
// [N]) with labels in [0, num_classes). Returns the `ReadIdx` error of either
// file, or InvalidArgument when a rank is wrong, when the counts differ
// (naming both files) or when a label is out of range (naming the file and
// the index).
absl::StatusOr<InMemoryDataset> LoadIdxClassification(
    const std::string& images_path, const std::string& labels_path,
    int num_classes);

}  // namespace dive::data

#endif  // DATASETS_FASHION_MNIST_H_
