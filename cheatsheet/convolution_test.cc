#include "cheatsheet/convolution.h"

#include <cmath>
#include <vector>

#include "cheatsheet/common.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dive::cheatsheet {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

TEST(ConvolutionTest, Corr2dByDefinitionMatchesConv2d) {
  const std::vector<DefinitionVsDive> ex = Corr2dExamples();
  ASSERT_EQ(ex.size(), 2u);
  // The book's printed result.
  EXPECT_THAT(ex[0].by_definition.ToVector(), ElementsAre(19, 25, 37, 43));
  EXPECT_THAT(ex[0].by_dive.ToVector(), ElementsAre(19, 25, 37, 43));
  ASSERT_EQ(ex[1].by_dive.shape(), Shape({4, 6}));
  EXPECT_LT(MaxAbsDiff(ex[1].by_definition, ex[1].by_dive), 1e-5f);
  EXPECT_GT(MaxAbsDiff(ex[1].by_dive, Tensor::Zeros({4, 6})), 0.1f);
}

TEST(ConvolutionTest, EdgeDetectionData) {
  const EdgeDetection e = LearnEdgeKernel(0);
  ASSERT_EQ(e.y.shape(), Shape({6, 7}));
  for (int64_t i = 0; i < 6; ++i) {
    for (int64_t j = 0; j < 7; ++j) {
      // 1 from white (1) to black (0) at column 1, -1 back at column 5.
      const float expected = j == 1 ? 1.0f : (j == 5 ? -1.0f : 0.0f);
      EXPECT_EQ(e.y.at<float>({i, j}), expected) << i << "," << j;
    }
  }
  // The kernel only detects vertical edges: X^T gives zeros.
  ASSERT_EQ(e.y_of_transpose.shape(), Shape({8, 5}));
  EXPECT_EQ(MaxAbsDiff(e.y_of_transpose, Tensor::Zeros({8, 5})), 0.0f);
}

TEST(ConvolutionTest, EdgeDetectionLearnsTheKernel) {
  for (uint64_t seed : {0, 1, 2, 3, 4}) {
    const EdgeDetection e = LearnEdgeKernel(20, seed);
    ASSERT_EQ(e.learned.size(), 2u);
    EXPECT_NEAR(e.learned[0], 1.0f, 0.05f) << "seed " << seed;
    EXPECT_NEAR(e.learned[1], -1.0f, 0.05f) << "seed " << seed;
    ASSERT_EQ(e.losses.size(), 20u);
    EXPECT_LT(e.losses.back(), e.losses.front() / 100) << "seed " << seed;
  }
}

TEST(ConvolutionTest, OutputSizeFormulaMatchesConvAndPools) {
  const std::vector<OutSizeRow> rows = OutputSizeTable();
  std::vector<int64_t> sizes;
  for (const OutSizeRow& r : rows) {
    EXPECT_EQ(r.conv, r.formula) << r.note;
    if (r.max_pool >= 0) {
      EXPECT_EQ(r.max_pool, r.formula) << r.note;
      EXPECT_EQ(r.avg_pool, r.formula) << r.note;
    }
    // The document's form of the same formula.
    EXPECT_EQ(r.formula, (r.n - r.k + r.p) / r.s + 1) << r.note;
    sizes.push_back(r.formula);
  }
  EXPECT_THAT(sizes,
              ElementsAreArray({8, 8, 4, 5, 9, 7, 28, 14, 54, 26, 48, 24}));
  // Pooling cannot pad more than half its window: the wide row has none.
  EXPECT_EQ(rows[4].max_pool, -1);
  EXPECT_EQ(rows[0].max_pool, 8);
  EXPECT_THAT(NonSquareOutputSize(), ElementsAre(2, 2, 2, 2));
}

TEST(ConvolutionTest, MultipleChannelsAndOneByOne) {
  const std::vector<DefinitionVsDive> ex = ChannelExamples();
  ASSERT_EQ(ex.size(), 4u);
  EXPECT_THAT(ex[0].by_definition.ToVector(), ElementsAre(56, 72, 104, 120));
  EXPECT_THAT(ex[0].by_dive.ToVector(), ElementsAre(56, 72, 104, 120));
  ASSERT_EQ(ex[1].by_dive.shape(), Shape({3, 2, 2}));
  const std::vector<float> book = {56, 72,  104, 120, 76,  100,
                                   148, 172, 96,  128, 192, 224};
  EXPECT_THAT(ex[1].by_definition.ToVector(), ElementsAreArray(book));
  EXPECT_THAT(ex[1].by_dive.ToVector(), ElementsAreArray(book));
  ASSERT_EQ(ex[2].by_definition.shape(), Shape({2, 3, 3}));
  EXPECT_LT(MaxAbsDiff(ex[2].by_definition, ex[2].by_dive), 1e-5f);
  EXPECT_LT(MaxAbsDiff(ex[3].by_definition, ex[3].by_dive), 1e-5f);
  // The matrix product and the definition agree with each other too.
  EXPECT_LT(MaxAbsDiff(ex[2].by_definition, ex[3].by_definition), 1e-5f);
  EXPECT_GT(MaxAbsDiff(ex[3].by_dive, Tensor::Zeros({2, 3, 3})), 0.1f);
}

TEST(ConvolutionTest, Pooling) {
  const std::vector<DefinitionVsDive> ex = PoolingExamples();
  ASSERT_EQ(ex.size(), 6u);
  EXPECT_THAT(ex[0].by_definition.ToVector(), ElementsAre(4, 5, 7, 8));
  EXPECT_THAT(ex[1].by_definition.ToVector(), ElementsAre(2, 3, 5, 6));
  for (const DefinitionVsDive& e : ex) {
    ASSERT_EQ(e.by_definition.shape(), e.by_dive.shape()) << e.what;
    EXPECT_EQ(e.by_definition.ToVector(), e.by_dive.ToVector()) << e.what;
  }
}

}  // namespace
}  // namespace dive::cheatsheet
