#include "datasets/fashion_mnist.h"

#include <sys/stat.h>

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "datasets/idx.h"

namespace dive::data {
namespace {

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// `dir/stem.gz` if it exists, else `dir/stem` if it exists, else NotFound
// naming both.
absl::StatusOr<std::string> FindFile(const std::string& dir,
                                     const std::string& stem) {
  const std::string base = dir.empty() || dir.back() == '/'
                               ? dir + stem
                               : absl::StrCat(dir, "/", stem);
  const std::string gz = base + ".gz";
  if (FileExists(gz)) return gz;
  if (FileExists(base)) return base;
  return absl::NotFoundError(absl::StrCat(
      "Fashion-MNIST file not found: neither ", gz, " nor ", base, " exists"));
}

}  // namespace

const std::array<std::string_view, kFashionMnistNumClasses>&
FashionMnistClassNames() {
  static constexpr std::array<std::string_view, kFashionMnistNumClasses>
      kNames = {"t-shirt", "trouser", "pullover", "dress", "coat",
                "sandal",  "shirt",   "sneaker",  "bag",   "ankle boot"};
  return kNames;
}

absl::StatusOr<InMemoryDataset> LoadIdxClassification(
    const std::string& images_path, const std::string& labels_path,
    int num_classes) {
  absl::StatusOr<IdxArray> images = ReadIdx(images_path);
  if (!images.ok()) return images.status();
  if (images->dims.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "file ", images_path, ": images must have rank 3 [N, H, W], got [",
        absl::StrJoin(images->dims, ", "), "]"));
  }
  absl::StatusOr<IdxArray> labels = ReadIdx(labels_path);
  if (!labels.ok()) return labels.status();
  if (labels->dims.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "file ", labels_path, ": labels must have rank 1 [N], got [",
        absl::StrJoin(labels->dims, ", "), "]"));
  }
  const int64_t n = images->dims[0];
  if (labels->dims[0] != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("file ", images_path, " has ", n, " images but file ",
                     labels_path, " has ", labels->dims[0], " labels"));
  }
  std::vector<int64_t> label_values(n);
  for (int64_t i = 0; i < n; ++i) {
    const int label = labels->data[i];
    if (label >= num_classes) {
      return absl::InvalidArgumentError(
          absl::StrCat("file ", labels_path, ": label ", label, " at index ", i,
                       " is outside [0, ", num_classes, ")"));
    }
    label_values[i] = label;
  }
  const int64_t height = images->dims[1];
  const int64_t width = images->dims[2];
  return InMemoryDataset(std::move(images->data), std::move(label_values),
                         /*channels=*/1, height, width);
}

absl::StatusOr<InMemoryDataset> LoadFashionMnist(const std::string& dir,
                                                 Split split) {
  const char* prefix = split == Split::kTrain ? "train" : "t10k";
  absl::StatusOr<std::string> images =
      FindFile(dir, absl::StrCat(prefix, "-images-idx3-ubyte"));
  if (!images.ok()) return images.status();
  absl::StatusOr<std::string> labels =
      FindFile(dir, absl::StrCat(prefix, "-labels-idx1-ubyte"));
  if (!labels.ok()) return labels.status();
  return LoadIdxClassification(*images, *labels, kFashionMnistNumClasses);
}

}  // namespace dive::data
