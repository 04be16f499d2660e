#include "nn/dropout.h"

#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_check.h"
#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::nn {
namespace {

TEST(DropoutTest, IdentityInEval) {
  Dropout drop(0.5f);
  EXPECT_EQ(drop.Describe(), "Dropout(p=0.5)");
  drop.Eval();
  const autograd::Variable x(Normal({4, 5}, 0, 1));
  const autograd::Variable y = drop(x);
  EXPECT_EQ(y.data().ToVector(), x.data().ToVector());
}

TEST(DropoutTest, TrainingZeroesAboutPAndScalesTheRest) {
  ManualSeed(0);
  const float p = 0.3f;
  Dropout drop(p);
  const int64_t n = 100000;
  const autograd::Variable y = drop(autograd::Variable(Tensor::Ones({n})));
  int64_t zeros = 0;
  double sum = 0;
  for (float v : y.data().ToVector()) {
    if (v == 0.0f) {
      ++zeros;
    } else {
      EXPECT_FLOAT_EQ(v, 1.0f / (1.0f - p));
    }
    sum += v;
  }
  EXPECT_NEAR(static_cast<double>(zeros) / n, p, 0.01);
  EXPECT_NEAR(sum / n, 1.0, 0.02);  // the mean is preserved
}

TEST(DropoutTest, ZeroProbabilityIsIdentity) {
  Dropout drop(0.0f);
  const Tensor x = Normal({10}, 0, 1);
  EXPECT_EQ(drop(autograd::Variable(x)).data().ToVector(), x.ToVector());
}

TEST(DropoutTest, SeedFixesTheMask) {
  Dropout drop(0.5f);
  const autograd::Variable x(Normal({50}, 0, 1));
  ManualSeed(9);
  const std::vector<float> a = drop(x).data().ToVector();
  ManualSeed(9);
  EXPECT_EQ(drop(x).data().ToVector(), a);
}

TEST(DropoutTest, GradCheckWithFixedMask) {
  Dropout drop(0.4f);
  const absl::Status s = autograd::GradCheck(
      [&drop](const std::vector<autograd::Variable>& in) {
        ManualSeed(21);  // the same mask on every call
        return drop(in[0]);
      },
      {Normal({4, 6}, 0, 1)});
  EXPECT_TRUE(s.ok()) << s;
}

TEST(DropoutTest, GradientIsTheScaledMask) {
  ManualSeed(3);
  Dropout drop(0.5f);
  autograd::Variable x(Tensor::Ones({1000}), /*requires_grad=*/true);
  const autograd::Variable y = drop(x);
  Sum(y).Backward();
  EXPECT_EQ(x.grad().ToVector(), y.data().ToVector());  // x is all ones
}

TEST(DropoutDeathTest, ProbabilityOutOfRange) {
  EXPECT_DEATH(Dropout(1.0f), "Dropout: probability p=1 is outside \\[0, 1\\)");
  EXPECT_DEATH(Dropout(-0.1f),
               "Dropout: probability p=-0.1 is outside \\[0, 1\\)");
}

}  // namespace
}  // namespace dive::nn
