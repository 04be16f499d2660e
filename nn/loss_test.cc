#include "nn/loss.h"

#include <cmath>
#include <vector>

#include "autograd/grad_check.h"
#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::nn {
namespace {

TEST(LossTest, CrossEntropyMatchesNegativeLogSoftmax) {
  const std::vector<float> logits = {1, 2, 3, -1, 0, 4};
  const Tensor labels = Tensor::FromInt64Vector({2, 0}, {2});
  const Variable loss =
      CrossEntropyLoss(Variable(Tensor::FromVector(logits, {2, 3})), labels);
  EXPECT_EQ(loss.rank(), 0);
  double want = 0;
  const int label[2] = {2, 0};
  for (int r = 0; r < 2; ++r) {
    double z = 0;
    for (int c = 0; c < 3; ++c) z += std::exp(logits[3 * r + c]);
    want -= std::log(std::exp(logits[3 * r + label[r]]) / z);
  }
  EXPECT_NEAR(loss.data().item(), want / 2, 1e-5);
}

TEST(LossTest, CrossEntropyIsStableForLargeLogits) {
  const Variable loss = CrossEntropyLoss(
      Variable(Tensor::FromVector({1000, 0}, {1, 2})),
      Tensor::FromInt64Vector({1}, {1}));
  EXPECT_NEAR(loss.data().item(), 1000.0f, 1e-2);
}

TEST(LossTest, Mse) {
  const Variable loss = MseLoss(Variable(Tensor::FromVector({1, 2, 3}, {3})),
                                Variable(Tensor::FromVector({1, 0, 6}, {3})));
  EXPECT_NEAR(loss.data().item(), (0 + 4 + 9) / 3.0f, 1e-6);
}

TEST(LossTest, GradCheck) {
  ManualSeed(1);
  const Tensor labels = Tensor::FromInt64Vector({0, 2, 1, 2}, {4});
  absl::Status s = GradCheck(
      [&labels](const std::vector<Variable>& in) {
        return CrossEntropyLoss(in[0], labels);
      },
      {Normal({4, 3}, 0, 2)});
  EXPECT_TRUE(s.ok()) << s;
  s = GradCheck(
      [](const std::vector<Variable>& in) { return MseLoss(in[0], in[1]); },
      {Normal({2, 3}, 0, 1), Normal({2, 3}, 0, 1)});
  EXPECT_TRUE(s.ok()) << s;
}

TEST(LossDeathTest, LabelShape) {
  EXPECT_DEATH(CrossEntropyLoss(Variable(Tensor::Zeros({2, 3})),
                                Tensor::FromInt64Vector({0, 1, 2}, {3})),
               "labels must be int64 \\[2\\], got int64 \\[3\\]");
}

}  // namespace
}  // namespace dive::nn
