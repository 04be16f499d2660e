#include "models/mlp/mlp.h"

#include <vector>

#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

TEST(MlpTest, ParameterCountFollowsTheInputSize) {
  // (14*14 * 256 + 256) + (256 * 10 + 10): PyTorch's numel sum for the twin
  // mlp(14) in models/pytorch_twins.py (the first Linear takes size * size
  // inputs, 784 at 28x28).
  EXPECT_EQ(Mlp(14)->NumParameters(), 53002);
}

TEST(MlpDropoutTest, ParameterCountFollowsTheInputSize) {
  // (14*14 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10): PyTorch's numel
  // sum for the twin mlp_dropout(14).
  EXPECT_EQ(MlpDropout(14)->NumParameters(), 118794);
}

TEST(MlpDropoutTest, EvalIsDeterministic) {
  auto net = MlpDropout();
  net->Eval();
  autograd::NoGradGuard no_grad;
  const Tensor x = Normal({4, 1, 28, 28}, 0, 1);
  EXPECT_EQ((*net)(autograd::Variable(x)).data().ToVector(),
            (*net)(autograd::Variable(x)).data().ToVector());
}

}  // namespace
}  // namespace dive::models
