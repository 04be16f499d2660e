#include "cheatsheet/mlp.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "cheatsheet/common.h"
#include "gtest/gtest.h"

namespace dive::cheatsheet {
namespace {

// The index of x = v on the grid x = i / 10 - 8.
size_t At(float v) { return static_cast<size_t>((v + 8.0f) * 10.0f + 0.5f); }

TEST(MlpTest, GridIsTheBooks) {
  const ActivationCurves a = ComputeActivations();
  ASSERT_EQ(a.x.size(), 161u);
  EXPECT_FLOAT_EQ(a.x.front(), -8.0f);
  EXPECT_FLOAT_EQ(a.x.back(), 8.0f);
  EXPECT_FLOAT_EQ(a.x[At(0.0f)], 0.0f);
}

TEST(MlpTest, ActivationsMatchTheClosedForms) {
  const ActivationCurves a = ComputeActivations();
  EXPECT_LT(MaxAbsDiff(a.relu, a.relu_formula), 1e-6f);
  EXPECT_LT(MaxAbsDiff(a.sigmoid, a.sigmoid_formula), 1e-6f);
  EXPECT_LT(MaxAbsDiff(a.tanh, a.tanh_formula), 1e-6f);
  EXPECT_FLOAT_EQ(a.relu[At(-3.0f)], 0.0f);
  EXPECT_FLOAT_EQ(a.relu[At(2.5f)], 2.5f);
  EXPECT_FLOAT_EQ(a.sigmoid[At(0.0f)], 0.5f);
  EXPECT_NEAR(a.sigmoid[At(8.0f)], 0.99966465f, 1e-6f);
  EXPECT_NEAR(a.tanh[At(1.0f)], 0.76159416f, 1e-6f);
  EXPECT_NEAR(a.tanh[At(-1.0f)], -0.76159416f, 1e-6f);
}

TEST(MlpTest, AutogradDerivativesMatchTheClosedForms) {
  const ActivationCurves a = ComputeActivations();
  EXPECT_EQ(a.relu_grad, a.relu_grad_formula);  // exactly 0 or 1
  EXPECT_LT(MaxAbsDiff(a.sigmoid_grad, a.sigmoid_grad_formula), 1e-6f);
  EXPECT_LT(MaxAbsDiff(a.tanh_grad, a.tanh_grad_formula), 1e-6f);
  // The book's figures: ReLU's gradient steps from 0 to 1 at 0 (0 at 0
  // itself, like PyTorch), sigmoid's peaks at 1/4 and tanh's at 1, at 0.
  EXPECT_FLOAT_EQ(a.relu_grad[At(0.0f)], 0.0f);
  EXPECT_FLOAT_EQ(a.relu_grad[At(0.1f)], 1.0f);
  EXPECT_FLOAT_EQ(a.relu_grad[At(-0.1f)], 0.0f);
  EXPECT_NEAR(a.sigmoid_grad[At(0.0f)], 0.25f, 1e-7f);
  EXPECT_NEAR(a.tanh_grad[At(0.0f)], 1.0f, 1e-7f);
  for (size_t i = 0; i < a.x.size(); ++i) {
    EXPECT_LE(a.sigmoid_grad[i], 0.25f);
    EXPECT_LE(a.tanh_grad[i], 1.0f);
  }
  EXPECT_LT(a.sigmoid_grad[At(8.0f)], 4e-4f);  // saturated
  EXPECT_LT(a.tanh_grad[At(-8.0f)], 1e-6f);
}

TEST(MlpTest, TableHasOneLinePerPointWithSevenColumns) {
  const std::vector<std::string> lines = absl::StrSplit(
      ActivationsTable(ComputeActivations()), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 162u);  // header + 161 points
  EXPECT_EQ(lines[0][0], '#');
  const std::vector<std::string> first = absl::StrSplit(lines[1], ' ');
  ASSERT_EQ(first.size(), 7u);
  EXPECT_EQ(first[0], "-8.0");
  EXPECT_EQ(first[1], "0");
  EXPECT_EQ(first[2], "0");
  EXPECT_NEAR(std::stod(first[3]), 1.0 / (1.0 + std::exp(8.0)), 1e-6);
  EXPECT_EQ(first[5], "-1");
  const std::vector<std::string> zero = absl::StrSplit(lines[81], ' ');
  ASSERT_EQ(zero.size(), 7u);
  EXPECT_EQ(zero[0], "0.0");
  EXPECT_EQ(zero[3], "0.5");
  EXPECT_EQ(zero[4], "0.25");
}

TEST(MlpTest, WithoutActivationTwoLayersAreOneAffineMap) {
  const AffineCollapse c = ComputeAffineCollapse();
  ASSERT_EQ(c.w.shape(), Shape({4, 3}));
  ASSERT_EQ(c.two_layers.shape(), Shape({6, 3}));
  EXPECT_LT(MaxAbsDiff(c.two_layers, c.one_layer), 1e-5f);
  // With a ReLU in between they are not.
  EXPECT_GT(MaxAbsDiff(c.with_relu, c.one_layer), 1e-2f);
}

}  // namespace
}  // namespace dive::cheatsheet
