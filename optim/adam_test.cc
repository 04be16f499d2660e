#include "optim/adam.h"

#include <cmath>
#include <vector>

#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "tensor/tensor.h"

namespace dive::optim {
namespace {

// Three steps of gradients for a 3-element parameter starting at kW0; the
// gradients are given (not computed from w) so the expectations are easy to
// follow.
const std::vector<double> kW0 = {1.0, -2.0, 0.5};
const std::vector<std::vector<double>> kGrads = {
    {0.1, -0.3, 2.0}, {0.2, 0.1, -1.0}, {-0.05, 0.4, 0.5}};

std::vector<float> ToFloat(const std::vector<double>& v) {
  return std::vector<float>(v.begin(), v.end());
}

// Textbook Adam (Kingma & Ba, Algorithm 1) in double, one element at a time,
// with either the L2 penalty added to the gradient (Adam) or decoupled decay
// applied to the weight before the step (AdamW, Loshchilov & Hutter).
std::vector<double> ReferenceAdam(double lr, double beta1, double beta2,
                                  double eps, double wd, bool decoupled,
                                  int steps) {
  std::vector<double> w = kW0;
  std::vector<double> m(w.size(), 0.0);
  std::vector<double> v(w.size(), 0.0);
  for (int t = 1; t <= steps; ++t) {
    for (size_t i = 0; i < w.size(); ++i) {
      double g = kGrads[t - 1][i];
      if (decoupled) {
        w[i] = w[i] - lr * wd * w[i];
      } else {
        g = g + wd * w[i];
      }
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      const double m_hat = m[i] / (1 - std::pow(beta1, t));
      const double v_hat = v[i] / (1 - std::pow(beta2, t));
      w[i] = w[i] - lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
  return w;
}

// A parameter at kW0, the start of the kGrads steps.
autograd::Variable StartAtW0() {
  return autograd::Variable(Tensor::FromVector(ToFloat(kW0), {3}), true);
}

// Runs `steps` steps of `opt` on `w` with kGrads.
void RunSteps(Optimizer& opt, autograd::Variable& w, int steps) {
  for (int t = 0; t < steps; ++t) {
    opt.ZeroGrad();
    w.set_grad(Tensor::FromVector(ToFloat(kGrads[t]), {3}));
    opt.Step();
  }
}

void ExpectNear(const autograd::Variable& w,
                const std::vector<double>& expected) {
  const std::vector<float> got = w.data().ToVector();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], expected[i], 2e-6) << "element " << i;
  }
}

TEST(AdamTest, DefaultsArePyTorchs) {
  autograd::Variable w(Tensor::Zeros({1}), true);
  Adam adam({w}, AdamOptions{});
  EXPECT_FLOAT_EQ(adam.lr(), 1e-3f);
  EXPECT_FLOAT_EQ(adam.options().beta1, 0.9f);
  EXPECT_FLOAT_EQ(adam.options().beta2, 0.999f);
  EXPECT_FLOAT_EQ(adam.options().eps, 1e-8f);
  EXPECT_FLOAT_EQ(adam.param_groups()[0].weight_decay, 0.0f);
  AdamW adamw({w}, AdamWOptions{});
  EXPECT_FLOAT_EQ(adamw.param_groups()[0].weight_decay, 1e-2f);
  EXPECT_EQ(adamw.name(), "AdamW");
}

TEST(AdamTest, FirstStepMovesEachWeightByLr) {
  // On step 1, m_hat = g and v_hat = g^2, so w -= lr * g / (|g| + eps):
  // a step of lr against the sign of the gradient.
  autograd::Variable w = StartAtW0();
  Adam adam({w}, AdamOptions{.lr = 0.1f});
  RunSteps(adam, w, 1);
  ExpectNear(w, {0.9, -1.9, 0.4});
}

TEST(AdamTest, ThreeStepsMatchTextbook) {
  autograd::Variable w = StartAtW0();
  Adam adam({w}, AdamOptions{.lr = 0.1f});
  RunSteps(adam, w, 3);
  ExpectNear(w, ReferenceAdam(0.1, 0.9, 0.999, 1e-8, 0.0, false, 3));
  EXPECT_EQ(adam.state(w)->step, 3);
}

TEST(AdamTest, ThreeStepsWithL2PenaltyAndOtherBetas) {
  autograd::Variable w = StartAtW0();
  Adam adam({w}, AdamOptions{.lr = 0.05f,
                             .beta1 = 0.8f,
                             .beta2 = 0.99f,
                             .eps = 1e-3f,
                             .weight_decay = 0.5f});
  RunSteps(adam, w, 3);
  ExpectNear(w, ReferenceAdam(0.05, 0.8, 0.99, 1e-3, 0.5, false, 3));
}

TEST(AdamWTest, ThreeStepsMatchTextbook) {
  autograd::Variable w = StartAtW0();
  AdamW adamw({w}, AdamWOptions{.lr = 0.1f, .weight_decay = 0.2f});
  RunSteps(adamw, w, 3);
  ExpectNear(w, ReferenceAdam(0.1, 0.9, 0.999, 1e-8, 0.2, true, 3));
}

TEST(AdamWTest, DecayIsNotInTheMoments) {
  // Decoupled decay with a zero gradient only shrinks w: m and v stay 0.
  autograd::Variable w(Tensor::FromVector({2.0f}, {1}), true);
  AdamWOptions options;
  options.lr = 0.1f;
  options.weight_decay = 0.5f;
  AdamW adamw({w}, options);
  w.set_grad(Tensor::Zeros({1}));
  adamw.Step();
  EXPECT_FLOAT_EQ(w.data().item(), 2.0f * (1 - 0.1f * 0.5f));
  EXPECT_EQ(adamw.state(w)->buffers[0].item(), 0.0f);
  EXPECT_EQ(adamw.state(w)->buffers[1].item(), 0.0f);
}

TEST(AdamTest, BiasCorrectionCountsStepsPerParameter) {
  // b gets no gradient on the first step, so its first update is a t = 1
  // update: a step of exactly lr.
  autograd::Variable a(Tensor::Zeros({1}), true);
  autograd::Variable b(Tensor::Zeros({1}), true);
  AdamOptions options;
  options.lr = 0.1f;
  Adam adam({a, b}, options);
  a.set_grad(Tensor::FromVector({1.0f}, {1}));
  adam.Step();
  b.set_grad(Tensor::FromVector({1.0f}, {1}));
  adam.Step();
  EXPECT_EQ(adam.state(a)->step, 2);
  EXPECT_EQ(adam.state(b)->step, 1);
  EXPECT_NEAR(b.data().item(), -0.1f, 1e-7f);
}

TEST(AdamDeathTest, EmptyParameterList) {
  EXPECT_DEATH(Adam({}, AdamOptions{}), "Adam: empty parameter list");
  EXPECT_DEATH(AdamW({}, AdamWOptions{}), "AdamW: empty parameter list");
}

TEST(AdamDeathTest, InvalidBetas) {
  autograd::Variable w(Tensor::Zeros({1}), true);
  AdamOptions options;
  options.beta2 = 1.0f;
  EXPECT_DEATH(Adam({w}, options), "Adam: beta2 must be in \\[0, 1\\)");
}

}  // namespace
}  // namespace dive::optim
