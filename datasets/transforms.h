// File: datasets/transforms.h
// -----------------------------------------------------------------------------
//
// Image transforms on float32 batches [B, C, H, W], matching their PyTorch /
// torchvision counterparts:
//
//   Normalize            torchvision.transforms.Normalize(mean, std)
//   ResizeBilinear       torch.nn.functional.interpolate(mode='bilinear',
//                        align_corners=False, antialias=False)
//   HorizontalFlip       torchvision.transforms.functional.hflip
//   RandomHorizontalFlip torchvision.transforms.RandomHorizontalFlip(p),
//                        drawn per image
//   RandomCrop           torchvision.transforms.RandomCrop(size, padding),
//                        zero padding, drawn per image
//
// Inputs may be any strided view; results are new contiguous tensors (the
// `InPlace` variant writes into its argument). Shape errors CHECK-fail with a
// message naming the transform and the shape. Random transforms draw from the
// given `Generator` in a fixed order (image by image), so a seed reproduces
// them exactly.
//
// Example:
//
//   dive::Tensor x = data.GatherImages(indices);     // [B, 1, 28, 28]
//   x = dive::data::ResizeBilinear(x, 224, 224);     // [B, 1, 224, 224]
//   x = dive::data::Normalize(x, {0.2860f}, {0.3530f});
//
//   dive::Generator gen(42);
//   x = dive::data::RandomHorizontalFlip(x, 0.5f, gen);
//   x = dive::data::RandomCrop(x, 224, /*padding=*/4, gen);
//
// `TransformOptions` chains them the way a training pipeline does, for
// `DataLoader` and any other user: `ApplyTransforms(options, x, gen)`.

#ifndef DATASETS_TRANSFORMS_H_
#define DATASETS_TRANSFORMS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::data {

// Normalize()
//
// (x - mean[c]) / std[c] for each channel c. `mean` and `std` have one value
// per channel, or a single value for all channels; every std must be > 0.
Tensor Normalize(const Tensor& batch, const std::vector<float>& mean,
                 const std::vector<float>& std);

// NormalizeInPlace()
//
// `Normalize` writing into `batch`, which must be contiguous.
void NormalizeInPlace(Tensor& batch, const std::vector<float>& mean,
                      const std::vector<float>& std);

// ResizeBilinear()
//
// Resizes each image to out_h x out_w by bilinear interpolation with
// half-pixel centers (align_corners=False): output pixel (i, j) samples the
// input at ((i + 0.5) * H / out_h - 0.5, (j + 0.5) * W / out_w - 0.5), with
// negative coordinates clamped to 0 and the last row and column repeated past
// the edge. No antialiasing, so downscaling skips pixels like PyTorch does.
// Parallel over the images and channels with OpenMP.
Tensor ResizeBilinear(const Tensor& batch, int64_t out_h, int64_t out_w);

// HorizontalFlip()
//
// Mirrors every image left to right.
Tensor HorizontalFlip(const Tensor& batch);

// RandomHorizontalFlip()
//
// Mirrors each image left to right with probability `p`, drawing one uniform
// number per image from `gen`.
Tensor RandomHorizontalFlip(const Tensor& batch, float p, Generator& gen);

// PadAndCrop()
//
// Crops a size x size window from each image zero-padded by `padding` on
// every side: image b's window starts at row tops[b] and column lefts[b] of
// the padded image, each in [0, H + 2 * padding - size]. The deterministic
// core of `RandomCrop`.
Tensor PadAndCrop(const Tensor& batch, int64_t size, int64_t padding,
                  const std::vector<int64_t>& tops,
                  const std::vector<int64_t>& lefts);

// RandomCrop()
//
// A random size x size window of each image after zero padding by `padding`
// on every side; the top then the left offset are drawn per image from `gen`.
// CHECK-fails when the padded image is smaller than `size`.
Tensor RandomCrop(const Tensor& batch, int64_t size, int64_t padding,
                  Generator& gen);

// ---- A chain of them
// ----------------------------------------------------------

// The transforms of an input pipeline, applied in this order by
// `ApplyTransforms`: random crop with zero padding, random horizontal flip,
// normalization, bilinear resize (normalizing first is cheaper and equal up
// to rounding, as bilinear weights sum to 1).
struct TransformOptions {
  // Crop each (square) image to its own size at a random offset after zero
  // padding by `crop_padding` on every side (torchvision's
  // RandomCrop(size, padding)).
  bool random_crop = false;
  int64_t crop_padding = 4;
  // Mirror each image left to right with probability 0.5.
  bool random_horizontal_flip = false;
  // Per-channel (or single) mean and std for `Normalize`; empty: none.
  std::vector<float> normalize_mean;
  std::vector<float> normalize_std;
  // Resize images to resize x resize (bilinear, as `ResizeBilinear`); 0
  // keeps their size.
  int64_t resize = 0;
};

// ValidateTransforms()
//
// InvalidArgument when `options` cannot apply to images of channels x
// height x width: resize < 0, crop_padding < 0, random_crop on non-square
// images, or normalize_mean/normalize_std of different sizes, sizes other
// than 0, 1 or the channel count, or a std <= 0.
absl::Status ValidateTransforms(const TransformOptions& options,
                                int64_t channels, int64_t height,
                                int64_t width);

// ApplyTransforms()
//
// `images` [B, C, H, W] after the transforms of `options` (which must be
// valid for them); the random ones draw from `gen`.
Tensor ApplyTransforms(const TransformOptions& options, Tensor images,
                       Generator& gen);

}  // namespace dive::data

#endif  // DATASETS_TRANSFORMS_H_
