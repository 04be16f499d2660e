#include "datasets/transforms.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::data {
namespace {

using ::testing::ElementsAreArray;
using ::testing::FloatNear;
using ::testing::Pointwise;

// torch.nn.functional.interpolate(x, size=(4, 4), mode='bilinear',
// align_corners=False) for x = [[1, 2], [3, 4]]. By the half-pixel formula,
// output i samples src = (i + 0.5) * 2 / 4 - 0.5 = -0.25 (clamped to 0), 0.25,
// 0.75, 1.25 (index 1, repeated past the edge), so each row is
// [a, 0.75a + 0.25b, 0.25a + 0.75b, b] and the rows mix the same way.
TEST(ResizeBilinearTest, Upsample2x2To4x4MatchesTorch) {
  Tensor x = Tensor::FromVector({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor y = ResizeBilinear(x, 4, 4);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 4, 4}));
  const std::vector<float> expected = {
      1.0f, 1.25f, 1.75f, 2.0f,  //
      1.5f, 1.75f, 2.25f, 2.5f,  //
      2.5f, 2.75f, 3.25f, 3.5f,  //
      3.0f, 3.25f, 3.75f, 4.0f,  //
  };
  EXPECT_THAT(y.ToVector(), Pointwise(FloatNear(1e-6f), expected));
}

// Non-integer scale, 3 -> 5 columns and 2 -> 3 rows, input [[0, 10, 20],
// [30, 40, 50]]. Columns: scale 0.6, src = 0.6 (j + 0.5) - 0.5 = -0.2 -> 0,
// 0.4, 1.0, 1.6, 2.2 -> index 2 (clamped), weights (idx0, lambda):
// (0, 0), (0, 0.4), (1, 0), (1, 0.6), (2, 0) -> row values 0, 4, 10, 16, 20.
// Rows: scale 2/3, src = -1/6 -> 0, 0.5, 7/6 -> index 1 -> rows r0,
// (r0 + r1) / 2, r1.
TEST(ResizeBilinearTest, NonIntegerScale) {
  Tensor x = Tensor::FromVector({0, 10, 20, 30, 40, 50}, {1, 1, 2, 3});
  Tensor y = ResizeBilinear(x, 3, 5);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 3, 5}));
  const std::vector<float> expected = {
      0,  4,  10, 16, 20,  //
      15, 19, 25, 31, 35,  //
      30, 34, 40, 46, 50,  //
  };
  EXPECT_THAT(y.ToVector(), Pointwise(FloatNear(1e-4f), expected));
}

// Downsampling without antialias, 4 -> 2: src = (i + 0.5) * 2 - 0.5 = 0.5,
// 2.5, the mean of pixels 0,1 and of pixels 2,3.
TEST(ResizeBilinearTest, DownsampleAveragesPairs) {
  Tensor x = Tensor::FromVector({0, 2, 4, 6}, {1, 1, 1, 4});
  Tensor y = ResizeBilinear(x, 1, 2);
  EXPECT_THAT(y.ToVector(), Pointwise(FloatNear(1e-6f), {1.0f, 5.0f}));
}

// PyTorch's align_corners=False formula, evaluated directly in double.
float DirectBilinear(const Tensor& x, int64_t b, int64_t c, int64_t i,
                     int64_t j, int64_t out_h, int64_t out_w) {
  const int64_t h = x.dim(2), w = x.dim(3);
  const auto source = [](int64_t dst, int64_t in, int64_t out, int64_t* i0,
                         int64_t* i1, double* lambda) {
    const double src =
        std::max(0.0, (dst + 0.5) * static_cast<double>(in) / out - 0.5);
    *i0 = std::min(static_cast<int64_t>(std::floor(src)), in - 1);
    *i1 = std::min(*i0 + 1, in - 1);
    *lambda = std::min(src - *i0, 1.0);
  };
  int64_t y0, y1, x0, x1;
  double ly, lx;
  source(i, h, out_h, &y0, &y1, &ly);
  source(j, w, out_w, &x0, &x1, &lx);
  const auto at = [&](int64_t y, int64_t xx) {
    return static_cast<double>(x.at<float>({b, c, y, xx}));
  };
  return static_cast<float>((1 - ly) *
                                ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) +
                            ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1)));
}

TEST(ResizeBilinearTest, MatchesDirectFormulaOnRandomInputs) {
  Generator gen(17);
  const Tensor x = gen.Uniform({3, 2, 7, 5}, -1.0f, 1.0f);
  for (auto [out_h, out_w] : std::vector<std::pair<int64_t, int64_t>>{
           {7, 5}, {28, 20}, {13, 3}, {3, 2}, {1, 1}, {96, 96}}) {
    const Tensor y = ResizeBilinear(x, out_h, out_w);
    ASSERT_EQ(y.shape(), (Shape{3, 2, out_h, out_w}));
    for (int64_t b = 0; b < 3; ++b) {
      for (int64_t c = 0; c < 2; ++c) {
        for (int64_t i = 0; i < out_h; ++i) {
          for (int64_t j = 0; j < out_w; ++j) {
            ASSERT_NEAR(y.at<float>({b, c, i, j}),
                        DirectBilinear(x, b, c, i, j, out_h, out_w), 1e-5f)
                << out_h << "x" << out_w << " at " << b << "," << c << "," << i
                << "," << j;
          }
        }
      }
    }
  }
}

TEST(ResizeBilinearTest, SameSizeIsIdentity) {
  Generator gen(3);
  Tensor x = gen.Uniform({2, 3, 5, 7}, 0.0f, 1.0f);
  Tensor y = ResizeBilinear(x, 5, 7);
  EXPECT_THAT(y.ToVector(), Pointwise(FloatNear(1e-6f), x.ToVector()));
}

TEST(ResizeBilinearTest, ConstantStaysConstantAndBatchesAreIndependent) {
  // 28 -> 224 on a batch of constant images with different values.
  const int64_t b = 6;
  Tensor x = Tensor::Empty({b, 1, 28, 28});
  for (int64_t k = 0; k < b; ++k) x.Select(0, k).Fill(static_cast<float>(k));
  Tensor y = ResizeBilinear(x, 224, 224);
  EXPECT_EQ(y.shape(), (Shape{b, 1, 224, 224}));
  for (int64_t k = 0; k < b; ++k) {
    const std::vector<float> v = y.Select(0, k).Contiguous().ToVector();
    for (float f : v) ASSERT_NEAR(f, static_cast<float>(k), 1e-5f);
  }
}

TEST(ResizeBilinearTest, AcceptsStridedViews) {
  Tensor x = Tensor::FromVector({1, 3, 2, 4}, {1, 1, 2, 2}).Transpose(2, 3);
  ASSERT_FALSE(x.is_contiguous());  // logically [[1, 2], [3, 4]]
  Tensor y = ResizeBilinear(x, 4, 4);
  EXPECT_NEAR(y.at<float>({0, 0, 1, 2}), 2.25f, 1e-6f);
}

TEST(NormalizeTest, PerChannelAndSingleValue) {
  Tensor x = Tensor::FromVector({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 1, 2});
  Tensor y = Normalize(x, {1.0f, 2.0f}, {2.0f, 4.0f});
  EXPECT_THAT(y.ToVector(),
              Pointwise(FloatNear(1e-6f),
                        {0.0f, 0.5f, 0.25f, 0.5f, 2.0f, 2.5f, 1.25f, 1.5f}));
  Tensor z = Normalize(x, {0.5f}, {0.5f});
  EXPECT_FLOAT_EQ(z.at<float>({1, 1, 0, 1}), 15.0f);
  // The input is unchanged.
  EXPECT_FLOAT_EQ(x.at<float>({0, 0, 0, 0}), 1.0f);
}

TEST(NormalizeDeathTest, WrongNumberOfChannels) {
  Tensor x = Tensor::Zeros({1, 3, 2, 2});
  EXPECT_DEATH(Normalize(x, {0.0f, 0.0f}, {1.0f, 1.0f}), "Normalize");
}

TEST(FlipTest, HorizontalFlip) {
  Tensor x = Tensor::FromVector({1, 2, 3, 4, 5, 6}, {1, 1, 2, 3});
  EXPECT_THAT(HorizontalFlip(x).ToVector(),
              ElementsAreArray({3.0f, 2.0f, 1.0f, 6.0f, 5.0f, 4.0f}));
}

TEST(FlipTest, RandomHorizontalFlipProbabilities) {
  Tensor x = Tensor::FromVector({1, 2, 3, 4, 5, 6}, {2, 1, 1, 3});
  Generator gen(1);
  EXPECT_THAT(RandomHorizontalFlip(x, 0.0f, gen).ToVector(),
              ElementsAreArray(x.ToVector()));
  EXPECT_THAT(RandomHorizontalFlip(x, 1.0f, gen).ToVector(),
              ElementsAreArray(HorizontalFlip(x).ToVector()));
}

TEST(FlipTest, RandomHorizontalFlipFlipsAboutHalfAndIsSeeded) {
  const int64_t b = 1000;
  Tensor x = Tensor::Empty({b, 1, 1, 2});
  for (int64_t k = 0; k < b; ++k) {
    x.data<float>()[2 * k] = 0.0f;
    x.data<float>()[2 * k + 1] = 1.0f;
  }
  Generator gen1(7), gen2(7);
  Tensor y1 = RandomHorizontalFlip(x, 0.5f, gen1);
  Tensor y2 = RandomHorizontalFlip(x, 0.5f, gen2);
  EXPECT_EQ(y1.ToVector(), y2.ToVector());
  int flipped = 0;
  for (int64_t k = 0; k < b; ++k) flipped += y1.at<float>({k, 0, 0, 0}) == 1.0f;
  EXPECT_GT(flipped, 430);
  EXPECT_LT(flipped, 570);
}

TEST(CropTest, PadAndCropPlacesWindow) {
  // One 3 x 3 image 1..9, padding 1, crop 3 x 3.
  Tensor x = Tensor::FromVector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  // Window at (0, 0) of the padded image: shifted down-right by one.
  EXPECT_THAT(
      PadAndCrop(x, 3, 1, {0}, {0}).ToVector(),
      ElementsAreArray({0.0f, 0.0f, 0.0f, 0.0f, 1.0f, 2.0f, 0.0f, 4.0f, 5.0f}));
  // (1, 1) is the original image.
  EXPECT_THAT(PadAndCrop(x, 3, 1, {1}, {1}).ToVector(),
              ElementsAreArray(x.ToVector()));
  // (2, 1): shifted up by one.
  EXPECT_THAT(
      PadAndCrop(x, 3, 1, {2}, {1}).ToVector(),
      ElementsAreArray({4.0f, 5.0f, 6.0f, 7.0f, 8.0f, 9.0f, 0.0f, 0.0f, 0.0f}));
  // A 2 x 2 crop without padding at (1, 0), on a two-channel batch.
  Tensor x2 = Tensor::FromVector({1, 2, 3, 4, 5, 6, 7, 8, 9,  //
                                  -1, -2, -3, -4, -5, -6, -7, -8, -9},
                                 {1, 2, 3, 3});
  EXPECT_THAT(
      PadAndCrop(x2, 2, 0, {1}, {0}).ToVector(),
      ElementsAreArray({4.0f, 5.0f, 7.0f, 8.0f, -4.0f, -5.0f, -7.0f, -8.0f}));
}

TEST(CropTest, RandomCropIsAShiftedWindowAndSeeded) {
  const int64_t b = 64, h = 6, pad = 2;
  Generator init(11);
  Tensor x = init.Uniform({b, 1, h, h}, 1.0f, 2.0f);  // never 0
  Generator gen1(5), gen2(5);
  Tensor y = RandomCrop(x, h, pad, gen1);
  EXPECT_EQ(y.shape(), x.shape());
  EXPECT_EQ(y.ToVector(), RandomCrop(x, h, pad, gen2).ToVector());
  // Each output image equals the input shifted by some (dy, dx) in
  // [-pad, pad]^2 with zeros filled in; all 25 shifts occur across 64 images
  // only rarely, but more than one must.
  int distinct_shifts = 0;
  std::vector<bool> seen(25, false);
  for (int64_t k = 0; k < b; ++k) {
    int matches = 0;
    for (int dy = -pad; dy <= pad; ++dy) {
      for (int dx = -pad; dx <= pad; ++dx) {
        bool ok = true;
        for (int64_t i = 0; i < h && ok; ++i) {
          for (int64_t j = 0; j < h && ok; ++j) {
            const int64_t si = i + dy, sj = j + dx;
            const float want = (si >= 0 && si < h && sj >= 0 && sj < h)
                                   ? x.at<float>({k, 0, si, sj})
                                   : 0.0f;
            ok = y.at<float>({k, 0, i, j}) == want;
          }
        }
        if (ok) {
          ++matches;
          const int s = (dy + pad) * 5 + (dx + pad);
          if (!seen[s]) ++distinct_shifts;
          seen[s] = true;
        }
      }
    }
    EXPECT_EQ(matches, 1) << "image " << k;
  }
  EXPECT_GT(distinct_shifts, 5);
}

TEST(CropDeathTest, CropLargerThanPaddedImage) {
  Generator gen(0);
  Tensor x = Tensor::Zeros({1, 1, 4, 4});
  EXPECT_DEATH(RandomCrop(x, 7, 1, gen), "RandomCrop");
}

}  // namespace
}  // namespace dive::data
