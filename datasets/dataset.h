// File: datasets/dataset.h
// -----------------------------------------------------------------------------
//
// `Dataset` is the minimal interface for indexed examples, after Flashlight's
// `fl::Dataset`: a size and random access to example `i`. `InMemoryDataset`
// is the implementation used for image classification: N images of C x H x W
// unsigned bytes plus N int64 labels, all in memory.
//
// Images stay as bytes (Fashion-MNIST's 60000 training images are 47 MB
// instead of 188 MB as float32) and become float32 in [0, 1] only when read:
// one at a time through `Get`, or a whole batch at once through
// `GatherImages`, which is what `Gather` (and so `DataLoader`) uses. Any other
// `Dataset` works with `DataLoader` too, through the default `Gather`.
//
// `InMemoryDataset` is a cheap handle: copies share the same immutable data,
// so it can be passed around by value (a `DataLoader` keeps its own copy).
// `SubsetDataset` is a view of a contiguous range of any dataset (the first
// N examples, one rank's share), with nothing copied.
//
// Example:
//
//   // Two 1 x 2 x 2 images with labels 3 and 7.
//   dive::data::InMemoryDataset data({0, 255, 0, 255, 10, 20, 30, 40}, {3, 7},
//                              /*channels=*/1, /*height=*/2, /*width=*/2);
//   data.size();                          // 2
//   dive::data::Example e = data.Get(0);        // e.image: float32 [1, 2, 2]
//   e.image.at<float>({0, 0, 1});         // 1.0f
//   dive::Tensor x = data.GatherImages({1, 0});  // float32 [2, 1, 2, 2]
//   dive::Tensor y = data.GatherLabels({1, 0});  // int64 [2] = {7, 3}
//   dive::data::SubsetDataset last(
//       std::make_shared<dive::data::InMemoryDataset>(data), 1, 2);
//   last.Get(0).label;                    // 7

#ifndef DATASETS_DATASET_H_
#define DATASETS_DATASET_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/types/span.h"
#include "tensor/shape.h"
#include "tensor/tensor.h"

namespace dive::data {

// One example: an image (float32 [C, H, W]) and its class label.
struct Example {
  Tensor image;
  int64_t label = 0;
};

// A batch: images float32 [B, C, H, W], labels int64 [B], and the dataset
// indices of the B examples.
struct Batch {
  Tensor images;
  Tensor labels;
  std::vector<int64_t> indices;
};

// The interface of an indexed dataset. Implementations must be safe to read
// from several threads at once (`Get` is const).
class Dataset {
 public:
  virtual ~Dataset() = default;

  // size()
  //
  // The number of examples.
  virtual int64_t size() const = 0;

  // Get()
  //
  // Example `i`, for 0 <= i < size(); CHECK-fails when out of range.
  virtual Example Get(int64_t i) const = 0;

  // Gather()
  //
  // The examples at `indices` (repeats allowed) as one batch, the indices
  // kept in `Batch::indices`. The default stacks `Get(i)` and CHECK-fails
  // unless every image has the first one's shape; an implementation may
  // override it with a faster gather of its own storage.
  virtual Batch Gather(absl::Span<const int64_t> indices) const;

  // ImageShape()
  //
  // The shape [C, H, W] of the images, which `Gather` requires all to have.
  // The default reads example 0 and gives an empty Shape for an empty
  // dataset; an implementation that knows the shape without an example may
  // override it.
  virtual Shape ImageShape() const;
};

// Images and labels held in memory; the images as unsigned bytes.
class InMemoryDataset : public Dataset {
 public:
  // InMemoryDataset()
  //
  // Takes ownership of `images`: N * channels * height * width bytes, image
  // after image, each in C, H, W order, where N = labels.size().
  // CHECK-fails when the sizes do not agree or a dimension is not positive.
  InMemoryDataset(std::vector<uint8_t> images, std::vector<int64_t> labels,
                  int64_t channels, int64_t height, int64_t width);

  int64_t size() const override { return data_->num_examples; }

  // Get()
  //
  // Image `i` as float32 [C, H, W] scaled to [0, 1] (bytes divided by 255),
  // and its label.
  Example Get(int64_t i) const override;

  // The images straight from their bytes (GatherImages, GatherLabels).
  Batch Gather(absl::Span<const int64_t> indices) const override;

  // [channels, height, width], even when empty.
  Shape ImageShape() const override;

  int64_t channels() const { return data_->channels; }
  int64_t height() const { return data_->height; }
  int64_t width() const { return data_->width; }
  // Bytes per image: channels * height * width.
  int64_t image_size() const { return data_->image_size; }

  // image_bytes()
  //
  // The C * H * W bytes of image `i`.
  const uint8_t* image_bytes(int64_t i) const;

  // label()
  //
  // The label of example `i`.
  int64_t label(int64_t i) const;

  // labels()
  //
  // All N labels.
  const std::vector<int64_t>& labels() const { return data_->labels; }

  // GatherImages()
  //
  // The images at `indices` (repeats allowed), converted to float32
  // [B, C, H, W] in [0, 1], where B = indices.size().
  Tensor GatherImages(absl::Span<const int64_t> indices) const;

  // GatherLabels()
  //
  // The labels at `indices` as an int64 [B] tensor.
  Tensor GatherLabels(absl::Span<const int64_t> indices) const;

 private:
  struct Data {
    std::vector<uint8_t> images;
    std::vector<int64_t> labels;
    int64_t num_examples;
    int64_t channels;
    int64_t height;
    int64_t width;
    int64_t image_size;
  };
  std::shared_ptr<const Data> data_;
};

// Unowned()
//
// A shared_ptr to `data` that does not own it, for an API that shares
// ownership (a DataLoader, a SubsetDataset) used only while `data` lives.
std::shared_ptr<const Dataset> Unowned(const Dataset& data);

// Head()
//
// The first `limit` examples of `data` as a view (all of them when `limit`
// is 0 or more than `data` holds): a --train_limit or --test_limit.
std::shared_ptr<const Dataset> Head(std::shared_ptr<const Dataset> data,
                                    int64_t limit);

// Examples [begin, end) of another dataset, as examples 0 .. end - begin - 1.
class SubsetDataset : public Dataset {
 public:
  // CHECK-fails unless 0 <= begin <= end <= data->size().
  SubsetDataset(std::shared_ptr<const Dataset> data, int64_t begin,
                int64_t end);

  int64_t size() const override { return end_ - begin_; }
  Example Get(int64_t i) const override;
  // The underlying dataset's gather (fast for an InMemoryDataset), with the
  // indices of this view in `Batch::indices`.
  Batch Gather(absl::Span<const int64_t> indices) const override;
  Shape ImageShape() const override { return data_->ImageShape(); }

 private:
  std::shared_ptr<const Dataset> data_;
  int64_t begin_, end_;
};

}  // namespace dive::data

#endif  // DATASETS_DATASET_H_
