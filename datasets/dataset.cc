#include "datasets/dataset.h"

#include <algorithm>
#include <utility>

#include "glog/logging.h"

namespace dive::data {
namespace {

// Scales bytes to [0, 1]. Multiplying by a precomputed 1/255 would differ
// from torchvision's `ToTensor` (a division) in the last bit for some values.
inline void BytesToUnitFloats(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]) / 255.0f;
}

}  // namespace

Batch Dataset::Gather(absl::Span<const int64_t> indices) const {
  const int64_t b = static_cast<int64_t>(indices.size());
  Batch batch;
  batch.indices.assign(indices.begin(), indices.end());
  batch.labels = Tensor::Empty({b}, DType::kInt64);
  if (b == 0) {
    batch.images = Tensor::Empty({0});
    return batch;
  }
  int64_t* labels = batch.labels.data<int64_t>();
  Shape shape;
  float* dst = nullptr;
  int64_t image_size = 0;
  for (int64_t k = 0; k < b; ++k) {
    const Example e = Get(indices[k]);
    CHECK(e.image.dtype() == DType::kFloat32 && e.image.rank() == 3)
        << "Dataset::Gather: example " << indices[k]
        << " has an image of shape " << e.image.shape() << ", not [C, H, W]";
    if (k == 0) {
      shape = e.image.shape();
      image_size = shape.numel();
      batch.images = Tensor::Empty({b, shape[0], shape[1], shape[2]});
      dst = batch.images.data<float>();
    }
    CHECK(e.image.shape() == shape)
        << "Dataset::Gather: example " << indices[k]
        << " has an image of shape " << e.image.shape() << " but example "
        << indices[0] << " has " << shape;
    const Tensor image = e.image.Contiguous();
    std::copy(image.data<float>(), image.data<float>() + image_size,
              dst + k * image_size);
    labels[k] = e.label;
  }
  return batch;
}

Shape Dataset::ImageShape() const {
  return size() > 0 ? Get(0).image.shape() : Shape();
}

InMemoryDataset::InMemoryDataset(std::vector<uint8_t> images,
                                 std::vector<int64_t> labels, int64_t channels,
                                 int64_t height, int64_t width) {
  CHECK(channels > 0 && height > 0 && width > 0)
      << "InMemoryDataset: image shape [" << channels << ", " << height << ", "
      << width << "] must be positive";
  const int64_t n = static_cast<int64_t>(labels.size());
  const int64_t image_size = channels * height * width;
  CHECK_EQ(static_cast<int64_t>(images.size()), n * image_size)
      << "InMemoryDataset: " << images.size() << " image bytes for " << n
      << " labels of images [" << channels << ", " << height << ", " << width
      << "]";
  auto data = std::make_shared<Data>();
  data->images = std::move(images);
  data->labels = std::move(labels);
  data->num_examples = n;
  data->channels = channels;
  data->height = height;
  data->width = width;
  data->image_size = image_size;
  data_ = std::move(data);
}

const uint8_t* InMemoryDataset::image_bytes(int64_t i) const {
  CHECK(i >= 0 && i < size()) << "InMemoryDataset: index " << i
                              << " out of range [0, " << size() << ")";
  return data_->images.data() + i * data_->image_size;
}

int64_t InMemoryDataset::label(int64_t i) const {
  CHECK(i >= 0 && i < size()) << "InMemoryDataset: index " << i
                              << " out of range [0, " << size() << ")";
  return data_->labels[i];
}

Example InMemoryDataset::Get(int64_t i) const {
  Example e;
  e.image = Tensor::Empty({channels(), height(), width()});
  BytesToUnitFloats(image_bytes(i), image_size(), e.image.data<float>());
  e.label = label(i);
  return e;
}

Batch InMemoryDataset::Gather(absl::Span<const int64_t> indices) const {
  Batch batch;
  batch.indices.assign(indices.begin(), indices.end());
  batch.images = GatherImages(indices);
  batch.labels = GatherLabels(indices);
  return batch;
}

Shape InMemoryDataset::ImageShape() const {
  return {channels(), height(), width()};
}

Tensor InMemoryDataset::GatherImages(absl::Span<const int64_t> indices) const {
  const int64_t b = static_cast<int64_t>(indices.size());
  Tensor out = Tensor::Empty({b, channels(), height(), width()});
  float* dst = out.data<float>();
  const int64_t n = image_size();
  for (int64_t k = 0; k < b; ++k) {
    BytesToUnitFloats(image_bytes(indices[k]), n, dst + k * n);
  }
  return out;
}

Tensor InMemoryDataset::GatherLabels(absl::Span<const int64_t> indices) const {
  const int64_t b = static_cast<int64_t>(indices.size());
  Tensor out = Tensor::Empty({b}, DType::kInt64);
  int64_t* dst = out.data<int64_t>();
  for (int64_t k = 0; k < b; ++k) dst[k] = label(indices[k]);
  return out;
}

std::shared_ptr<const Dataset> Unowned(const Dataset& data) {
  return std::shared_ptr<const Dataset>(std::shared_ptr<const Dataset>(),
                                        &data);
}

std::shared_ptr<const Dataset> Head(std::shared_ptr<const Dataset> data,
                                    int64_t limit) {
  const int64_t n = data->size();
  return std::make_shared<SubsetDataset>(
      std::move(data), 0, limit > 0 ? std::min(limit, n) : n);
}

SubsetDataset::SubsetDataset(std::shared_ptr<const Dataset> data,
                             int64_t begin, int64_t end)
    : data_(std::move(data)), begin_(begin), end_(end) {
  CHECK(data_ != nullptr) << "SubsetDataset: no dataset";
  CHECK(0 <= begin && begin <= end && end <= data_->size())
      << "SubsetDataset: [" << begin << ", " << end
      << ") is not a range of a dataset of " << data_->size() << " examples";
}

Example SubsetDataset::Get(int64_t i) const {
  CHECK(i >= 0 && i < size()) << "SubsetDataset: example " << i
                              << " out of range [0, " << size() << ")";
  return data_->Get(begin_ + i);
}

Batch SubsetDataset::Gather(absl::Span<const int64_t> indices) const {
  std::vector<int64_t> shifted(indices.begin(), indices.end());
  for (int64_t& i : shifted) {
    CHECK(i >= 0 && i < size()) << "SubsetDataset: example " << i
                                << " out of range [0, " << size() << ")";
    i += begin_;
  }
  Batch batch = data_->Gather(shifted);
  batch.indices.assign(indices.begin(), indices.end());
  return batch;
}

}  // namespace dive::data
