#include "datasets/transforms.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dive::data {
namespace {

void CheckBatch(const Tensor& batch, const char* op) {
  CHECK(batch.defined()) << op << ": undefined tensor";
  CHECK_EQ(batch.rank(), 4)
      << op << ": expected a batch [B, C, H, W], got " << batch.shape();
  CHECK(batch.dtype() == DType::kFloat32)
      << op << ": expected float32, got " << DTypeName(batch.dtype());
}

// For one axis: the two source indices and their weights for each output
// position, computed as PyTorch's upsample kernels do (in float, with
// `area_pixel_compute_source_index` and `guard_index_and_lambda`).
struct LinearTaps {
  std::vector<int64_t> i0, i1;
  std::vector<float> w0, w1;
};

LinearTaps ComputeTaps(int64_t in_size, int64_t out_size) {
  LinearTaps taps;
  taps.i0.resize(out_size);
  taps.i1.resize(out_size);
  taps.w0.resize(out_size);
  taps.w1.resize(out_size);
  const float scale =
      static_cast<float>(in_size) / static_cast<float>(out_size);
  for (int64_t o = 0; o < out_size; ++o) {
    float src = scale * (static_cast<float>(o) + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    const int64_t i0 =
        std::min(static_cast<int64_t>(std::floor(src)), in_size - 1);
    const float lambda =
        std::min(std::max(src - static_cast<float>(i0), 0.0f), 1.0f);
    taps.i0[o] = i0;
    taps.i1[o] = i0 + (i0 < in_size - 1 ? 1 : 0);
    taps.w1[o] = lambda;
    taps.w0[o] = 1.0f - lambda;
  }
  return taps;
}

}  // namespace

void NormalizeInPlace(Tensor& batch, const std::vector<float>& mean,
                      const std::vector<float>& std) {
  CheckBatch(batch, "Normalize");
  CHECK(batch.is_contiguous()) << "NormalizeInPlace: non-contiguous batch";
  const int64_t b = batch.dim(0), c = batch.dim(1);
  const int64_t plane = batch.dim(2) * batch.dim(3);
  CHECK(mean.size() == std.size() &&
        (mean.size() == 1 || static_cast<int64_t>(mean.size()) == c))
      << "Normalize: " << mean.size() << " means and " << std.size()
      << " stds for a batch " << batch.shape()
      << " (need 1 or one per channel)";
  for (float s : std) CHECK_GT(s, 0.0f) << "Normalize: std must be > 0";
  float* data = batch.data<float>();
#pragma omp parallel for schedule(static) if (b * c * plane > (1 << 20))
  for (int64_t p = 0; p < b * c; ++p) {
    const size_t ch = mean.size() == 1 ? 0 : static_cast<size_t>(p % c);
    const float m = mean[ch];
    const float inv = 1.0f / std[ch];
    float* x = data + p * plane;
    for (int64_t i = 0; i < plane; ++i) x[i] = (x[i] - m) * inv;
  }
}

Tensor Normalize(const Tensor& batch, const std::vector<float>& mean,
                 const std::vector<float>& std) {
  CheckBatch(batch, "Normalize");
  Tensor out = batch.Clone();
  NormalizeInPlace(out, mean, std);
  return out;
}

Tensor ResizeBilinear(const Tensor& batch, int64_t out_h, int64_t out_w) {
  CheckBatch(batch, "ResizeBilinear");
  CHECK(out_h > 0 && out_w > 0) << "ResizeBilinear: output size " << out_h
                                << " x " << out_w << " must be positive";
  const Tensor in = batch.Contiguous();
  const int64_t b = in.dim(0), c = in.dim(1), h = in.dim(2), w = in.dim(3);
  CHECK(h > 0 && w > 0) << "ResizeBilinear: empty images " << in.shape();
  Tensor out = Tensor::Empty({b, c, out_h, out_w});
  const LinearTaps rows = ComputeTaps(h, out_h);
  const LinearTaps cols = ComputeTaps(w, out_w);
  const float* src = in.data<float>();
  float* dst = out.data<float>();
  const int64_t planes = b * c;
  // Separable: each input row is first interpolated horizontally to out_w
  // values, then each output row mixes two of those rows. This computes
  // PyTorch's wh0 * (ww0 * a + ww1 * b) + wh1 * (ww0 * c + ww1 * d) with the
  // same operations, but the vertical pass is a contiguous (vectorized) loop.
#pragma omp parallel if (planes * out_h * out_w > (1 << 15))
  {
    std::vector<float> horizontal(h * out_w);
#pragma omp for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
      const float* s = src + p * h * w;
      for (int64_t r = 0; r < h; ++r) {
        const float* srow = s + r * w;
        float* hrow = horizontal.data() + r * out_w;
        for (int64_t j = 0; j < out_w; ++j) {
          hrow[j] =
              cols.w0[j] * srow[cols.i0[j]] + cols.w1[j] * srow[cols.i1[j]];
        }
      }
      float* d = dst + p * out_h * out_w;
      for (int64_t i = 0; i < out_h; ++i) {
        const float* t0 = horizontal.data() + rows.i0[i] * out_w;
        const float* t1 = horizontal.data() + rows.i1[i] * out_w;
        const float wh0 = rows.w0[i], wh1 = rows.w1[i];
        float* drow = d + i * out_w;
        for (int64_t j = 0; j < out_w; ++j) drow[j] = wh0 * t0[j] + wh1 * t1[j];
      }
    }
  }
  return out;
}

namespace {

// Copies `in` (contiguous) to a new tensor, mirroring image k when flip[k].
Tensor FlipSelected(const Tensor& in, const std::vector<bool>& flip) {
  const int64_t b = in.dim(0), c = in.dim(1), h = in.dim(2), w = in.dim(3);
  Tensor out = Tensor::Empty(in.shape());
  const float* src = in.data<float>();
  float* dst = out.data<float>();
  const int64_t image = c * h * w;
  for (int64_t k = 0; k < b; ++k) {
    const float* s = src + k * image;
    float* d = dst + k * image;
    if (!flip[k]) {
      std::copy(s, s + image, d);
      continue;
    }
    for (int64_t r = 0; r < c * h; ++r) {
      std::reverse_copy(s + r * w, s + (r + 1) * w, d + r * w);
    }
  }
  return out;
}

}  // namespace

Tensor HorizontalFlip(const Tensor& batch) {
  CheckBatch(batch, "HorizontalFlip");
  return FlipSelected(batch.Contiguous(),
                      std::vector<bool>(batch.dim(0), true));
}

Tensor RandomHorizontalFlip(const Tensor& batch, float p, Generator& gen) {
  CheckBatch(batch, "RandomHorizontalFlip");
  CHECK(p >= 0.0f && p <= 1.0f)
      << "RandomHorizontalFlip: probability " << p << " not in [0, 1]";
  std::vector<bool> flip(batch.dim(0));
  for (int64_t k = 0; k < batch.dim(0); ++k) {
    flip[k] = gen.NextUniform(0.0f, 1.0f) < p;
  }
  return FlipSelected(batch.Contiguous(), flip);
}

Tensor PadAndCrop(const Tensor& batch, int64_t size, int64_t padding,
                  const std::vector<int64_t>& tops,
                  const std::vector<int64_t>& lefts) {
  CheckBatch(batch, "PadAndCrop");
  const Tensor in = batch.Contiguous();
  const int64_t b = in.dim(0), c = in.dim(1), h = in.dim(2), w = in.dim(3);
  CHECK_GT(size, 0) << "PadAndCrop: size must be positive";
  CHECK_GE(padding, 0) << "PadAndCrop: negative padding";
  CHECK(h + 2 * padding >= size && w + 2 * padding >= size)
      << "PadAndCrop: crop " << size << " x " << size << " larger than the "
      << "padded images of " << in.shape() << " with padding " << padding;
  CHECK(static_cast<int64_t>(tops.size()) == b &&
        static_cast<int64_t>(lefts.size()) == b)
      << "PadAndCrop: " << tops.size() << " tops and " << lefts.size()
      << " lefts for " << b << " images";
  Tensor out = Tensor::Zeros({b, c, size, size});
  const float* src = in.data<float>();
  float* dst = out.data<float>();
  for (int64_t k = 0; k < b; ++k) {
    CHECK(tops[k] >= 0 && tops[k] <= h + 2 * padding - size && lefts[k] >= 0 &&
          lefts[k] <= w + 2 * padding - size)
        << "PadAndCrop: offset (" << tops[k] << ", " << lefts[k]
        << ") out of range for image " << k;
    // Window rows/columns [top, top + size) in padded coordinates map to
    // input rows/columns shifted by -padding; only the overlap is copied.
    const int64_t y0 = tops[k] - padding, x0 = lefts[k] - padding;
    const int64_t r_begin = std::max<int64_t>(0, -y0);
    const int64_t r_end = std::min<int64_t>(size, h - y0);
    const int64_t c_begin = std::max<int64_t>(0, -x0);
    const int64_t c_end = std::min<int64_t>(size, w - x0);
    if (r_begin >= r_end || c_begin >= c_end) continue;
    for (int64_t ch = 0; ch < c; ++ch) {
      const float* s = src + (k * c + ch) * h * w;
      float* d = dst + (k * c + ch) * size * size;
      for (int64_t r = r_begin; r < r_end; ++r) {
        const float* srow = s + (y0 + r) * w + (x0 + c_begin);
        std::copy(srow, srow + (c_end - c_begin), d + r * size + c_begin);
      }
    }
  }
  return out;
}

Tensor RandomCrop(const Tensor& batch, int64_t size, int64_t padding,
                  Generator& gen) {
  CheckBatch(batch, "RandomCrop");
  const int64_t b = batch.dim(0);
  const int64_t h = batch.dim(2), w = batch.dim(3);
  CHECK(size > 0 && padding >= 0 && h + 2 * padding >= size &&
        w + 2 * padding >= size)
      << "RandomCrop: crop " << size << " x " << size << " with padding "
      << padding << " does not fit images of " << batch.shape();
  std::vector<int64_t> tops(b), lefts(b);
  for (int64_t k = 0; k < b; ++k) {
    tops[k] = gen.NextIndex(h + 2 * padding - size + 1);
    lefts[k] = gen.NextIndex(w + 2 * padding - size + 1);
  }
  return PadAndCrop(batch, size, padding, tops, lefts);
}

absl::Status ValidateTransforms(const TransformOptions& options,
                                int64_t channels, int64_t height,
                                int64_t width) {
  const auto invalid = [](auto&&... args) {
    return absl::InvalidArgumentError(absl::StrCat(args...));
  };
  if (options.resize < 0) {
    return invalid("resize must be >= 0, got ", options.resize);
  }
  if (options.crop_padding < 0) {
    return invalid("crop_padding must be >= 0, got ", options.crop_padding);
  }
  if (options.random_crop && height != width) {
    return invalid("random_crop needs square images, got ", height, " x ",
                   width);
  }
  const size_t nm = options.normalize_mean.size();
  if (nm != options.normalize_std.size()) {
    return invalid(nm, " normalize_mean values but ",
                   options.normalize_std.size(), " normalize_std values");
  }
  if (nm != 0 && nm != 1 && static_cast<int64_t>(nm) != channels) {
    return invalid(nm, " normalize_mean/normalize_std values for ", channels,
                   " channels (need 1 or one per channel)");
  }
  for (float s : options.normalize_std) {
    if (!(s > 0.0f)) return invalid("normalize_std values must be > 0");
  }
  return absl::OkStatus();
}

Tensor ApplyTransforms(const TransformOptions& options, Tensor images,
                       Generator& gen) {
  if (options.random_crop) {
    images = RandomCrop(images, images.dim(2), options.crop_padding, gen);
  }
  if (options.random_horizontal_flip) {
    images = RandomHorizontalFlip(images, 0.5f, gen);
  }
  if (!options.normalize_mean.empty()) {
    images = Normalize(images, options.normalize_mean, options.normalize_std);
  }
  if (options.resize > 0 &&
      (options.resize != images.dim(2) || options.resize != images.dim(3))) {
    images = ResizeBilinear(images, options.resize, options.resize);
  }
  return images;
}

}  // namespace dive::data
