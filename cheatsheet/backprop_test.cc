#include "cheatsheet/backprop.h"

#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_check.h"
#include "autograd/variable.h"
#include "cheatsheet/common.h"
#include "gtest/gtest.h"
#include "tensor/ops.h"

namespace dive::cheatsheet {
namespace {

TEST(BackpropTest, ForwardQuantities) {
  const BackpropSheet b = RunBackprop();
  ASSERT_EQ(b.z.shape(), Shape({5, 1}));
  ASSERT_EQ(b.o.shape(), Shape({3, 1}));
  EXPECT_NEAR(b.objective, b.autograd_objective, 1e-5f);
  EXPECT_GT(b.loss, 0.0f);
  EXPECT_GT(b.penalty, 0.0f);
  // ∂J/∂o sums to zero (softmax minus a one-hot vector) and is negative
  // only at the true class.
  const std::vector<float> dj_do = b.dj_do.ToVector();
  EXPECT_NEAR(dj_do[0] + dj_do[1] + dj_do[2], 0.0f, 1e-6f);
  EXPECT_LT(dj_do[1], 0.0f);
  EXPECT_GT(dj_do[0], 0.0f);
  EXPECT_GT(dj_do[2], 0.0f);
}

TEST(BackpropTest, HandWrittenGradientsEqualAutograd) {
  const BackpropSheet b = RunBackprop();
  ASSERT_EQ(b.dj_dw1.shape(), b.w1.shape());
  ASSERT_EQ(b.dj_dw2.shape(), b.w2.shape());
  EXPECT_LT(MaxAbsDiff(b.dj_dw2, b.autograd_dw2), 1e-6f);
  EXPECT_LT(MaxAbsDiff(b.dj_dw1, b.autograd_dw1), 1e-6f);
  EXPECT_LT(MaxAbsDiff(b.dj_dx, b.autograd_dx), 1e-6f);
  // Not trivially small: the comparison means something.
  EXPECT_GT(MaxAbsDiff(b.dj_dw1, ops::MulScalar(b.w1, b.lambda)), 1e-2f);
  EXPECT_GT(MaxAbsDiff(b.dj_dw2, ops::MulScalar(b.w2, b.lambda)), 1e-2f);
}

TEST(BackpropTest, PenaltyTermIsLambdaW) {
  // Without the data term the gradient is exactly λW: ∂J/∂W - ∂L/∂W.
  const BackpropSheet b = RunBackprop();
  const Tensor data_term =
      ops::MatMul(b.dj_do, b.h.Transpose(0, 1));  // ∂L/∂W2 = ∂J/∂o h^T
  EXPECT_LT(MaxAbsDiff(ops::Sub(b.autograd_dw2, data_term),
                       ops::MulScalar(b.w2, b.lambda)),
            1e-6f);
}

TEST(BackpropTest, AutogradAgreesWithFiniteDifferences) {
  const BackpropSheet b = RunBackprop();
  const float lambda = b.lambda;
  const int64_t y = b.y;
  const absl::Status s = autograd::GradCheck(
      [lambda, y](const std::vector<autograd::Variable>& in) {
        const autograd::Variable o = MatMul(in[2], Tanh(MatMul(in[1], in[0])));
        return SoftmaxCrossEntropy(Reshape(o, {1, 3}),
                                   Tensor::FromInt64Vector({y}, {1})) +
               (Sum(Square(in[1])) + Sum(Square(in[2]))) * (lambda / 2);
      },
      {b.x, b.w1, b.w2});
  EXPECT_TRUE(s.ok()) << s;
}

}  // namespace
}  // namespace dive::cheatsheet
