#include "optim/sgd.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::optim {
namespace {

autograd::Variable Param(std::vector<float> values) {
  const int64_t n = static_cast<int64_t>(values.size());
  return autograd::Variable(Tensor::FromVector(values, {n}),
                            /*requires_grad=*/true);
}

SGDOptions Options(float lr, float momentum = 0, float dampening = 0,
                   float weight_decay = 0, bool nesterov = false) {
  SGDOptions options;
  options.lr = lr;
  options.momentum = momentum;
  options.dampening = dampening;
  options.weight_decay = weight_decay;
  options.nesterov = nesterov;
  return options;
}

// Applies the gradients `grads[t]` (one value, used as +g for element 0 and
// -g for element 1) to a parameter starting at [1, -1] and returns element 0
// after each step; element 1 must mirror it.
std::vector<float> Trajectory(const SGDOptions& options,
                              const std::vector<float>& grads) {
  autograd::Variable w = Param({1, -1});
  SGD sgd({w}, options);
  std::vector<float> out;
  for (float g : grads) {
    sgd.ZeroGrad();
    w.set_grad(Tensor::FromVector({g, -g}, {2}));
    sgd.Step();
    EXPECT_FLOAT_EQ(w.data().at<float>({1}), -w.data().at<float>({0}));
    out.push_back(w.data().at<float>({0}));
  }
  return out;
}

void ExpectTrajectory(const std::vector<float>& got,
                      const std::vector<float>& expected) {
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], expected[i], 1e-6f) << "after step " << i + 1;
  }
}

TEST(SGDTest, WeightDecayIsTheSeedRule) {
  // w <- (1 - lr * lambda) w - lr * g with lr = 0.5, lambda = 0.25:
  //   (1 - 0.125) * 2    - 0.5 * 1    =  1.25
  //   (1 - 0.125) * -4   - 0.5 * 0.5  = -3.75
  //   (1 - 0.125) * 0.5  - 0.5 * -2   =  1.4375
  // All dyadic, so float gives them exactly.
  autograd::Variable w = Param({2, -4, 0.5});
  SGD sgd({w}, Options(/*lr=*/0.5f, 0, 0, /*weight_decay=*/0.25f));
  w.set_grad(Tensor::FromVector({1, 0.5, -2}, {3}));
  sgd.Step();
  EXPECT_EQ(w.data().ToVector(), (std::vector<float>{1.25f, -3.75f, 1.4375f}));

  // The book's setting, lr = 0.003 and lambda = 3: w = 1, g = 0.2 gives
  // (1 - 0.009) * 1 - 0.003 * 0.2 = 0.9904.
  autograd::Variable v = Param({1});
  SGD book({v}, Options(/*lr=*/0.003f, 0, 0, /*weight_decay=*/3.0f));
  v.set_grad(Tensor::FromVector({0.2f}, {1}));
  book.Step();
  EXPECT_FLOAT_EQ(v.data().item(), 0.9904f);
}

TEST(SGDTest, PlainStep) {
  // lr 0.1, no momentum: 1 - 0.1 * (1 + 2 - 1) = 0.8 after three steps.
  ExpectTrajectory(Trajectory(Options(0.1f), {1, 2, -1}), {0.9f, 0.7f, 0.8f});
}

TEST(SGDTest, MomentumThreeSteps) {
  // lr 0.1, momentum 0.9, gradients 1, 2, -1:
  //   buf = 1                       w = 1    - 0.1 * 1    = 0.9
  //   buf = 0.9 * 1    + 2  = 2.9   w = 0.9  - 0.1 * 2.9  = 0.61
  //   buf = 0.9 * 2.9  - 1  = 1.61  w = 0.61 - 0.1 * 1.61 = 0.449
  ExpectTrajectory(Trajectory(Options(0.1f, 0.9f), {1, 2, -1}),
                   {0.9f, 0.61f, 0.449f});
}

TEST(SGDTest, MomentumWithDampeningThreeSteps) {
  // Dampening 0.5 scales the new gradient except on the first step, where
  // the buffer is the gradient itself (PyTorch):
  //   buf = 1                            w = 1    - 0.1 * 1    = 0.9
  //   buf = 0.9 * 1   + 0.5 * 2  = 1.9   w = 0.9  - 0.1 * 1.9  = 0.71
  //   buf = 0.9 * 1.9 - 0.5 * 1  = 1.21  w = 0.71 - 0.1 * 1.21 = 0.589
  ExpectTrajectory(Trajectory(Options(0.1f, 0.9f, 0.5f), {1, 2, -1}),
                   {0.9f, 0.71f, 0.589f});
}

TEST(SGDTest, NesterovThreeSteps) {
  // The step uses g + momentum * buf:
  //   buf = 1     step = 1  + 0.9 * 1    = 1.9    w = 1     - 0.19   = 0.81
  //   buf = 2.9   step = 2  + 0.9 * 2.9  = 4.61   w = 0.81  - 0.461  = 0.349
  //   buf = 1.61  step = -1 + 0.9 * 1.61 = 0.449  w = 0.349 - 0.0449 = 0.3041
  ExpectTrajectory(
      Trajectory(Options(0.1f, 0.9f, 0, 0, /*nesterov=*/true), {1, 2, -1}),
      {0.81f, 0.349f, 0.3041f});
}

TEST(SGDTest, MomentumWithWeightDecayThreeSteps) {
  // wd 0.1 enters the gradient before the buffer:
  //   g = 1  + 0.1 * 1      = 1.1       buf = 1.1
  //     w = 1 - 0.11 = 0.89
  //   g = 2  + 0.1 * 0.89   = 2.089     buf = 0.99 + 2.089 = 3.079
  //     w = 0.89 - 0.3079 = 0.5821
  //   g = -1 + 0.1 * 0.5821 = -0.94179  buf = 2.7711 - 0.94179 = 1.82931
  //     w = 0.5821 - 0.182931 = 0.399169
  ExpectTrajectory(Trajectory(Options(0.1f, 0.9f, 0, 0.1f), {1, 2, -1}),
                   {0.89f, 0.5821f, 0.399169f});
}

TEST(SGDTest, ParametersWithoutGradientAreUntouched) {
  autograd::Variable a = Param({1, 2});
  autograd::Variable b = Param({3, 4});
  SGD sgd({a, b}, Options(0.5f, 0.9f, 0, /*weight_decay=*/0.1f));
  a.set_grad(Tensor::FromVector({1, 1}, {2}));
  sgd.Step();
  sgd.Step();
  // Weight decay does not touch b either: it has no gradient.
  EXPECT_EQ(b.data().ToVector(), (std::vector<float>{3, 4}));
  EXPECT_EQ(sgd.state(b), nullptr);
  EXPECT_NE(a.data().at<float>({0}), 1.0f);
}

TEST(SGDTest, LearningRateAndWeightDecayPerGroup) {
  autograd::Variable w = Param({1});
  autograd::Variable b = Param({1});
  SGD sgd({w}, Options(/*lr=*/0.5f, 0, 0, /*weight_decay=*/0.5f));
  sgd.AddParamGroup({{b}, /*lr=*/0.25f, /*weight_decay=*/0.0f});
  w.set_grad(Tensor::FromVector({1}, {1}));
  b.set_grad(Tensor::FromVector({1}, {1}));
  sgd.Step();
  EXPECT_FLOAT_EQ(w.data().item(), 1 - 0.5f * (1 + 0.5f));  // 0.25
  EXPECT_FLOAT_EQ(b.data().item(), 1 - 0.25f);              // 0.75
}

TEST(SGDTest, UpdatesTheModelsStorage) {
  Tensor storage = Tensor::FromVector({1, 2}, {2});
  autograd::Variable w(storage, /*requires_grad=*/true);
  SGD sgd({w}, Options(1.0f));
  w.set_grad(Tensor::FromVector({1, 1}, {2}));
  sgd.Step();
  EXPECT_EQ(storage.ToVector(), (std::vector<float>{0, 1}));
}

TEST(SGDDeathTest, EmptyParameterList) {
  EXPECT_DEATH(SGD({}, Options(0.1f)), "SGD: empty parameter list");
}

TEST(SGDDeathTest, NesterovNeedsMomentumWithoutDampening) {
  EXPECT_DEATH(SGD({Param({1})}, Options(0.1f, 0, 0, 0, true)),
               "SGD: nesterov momentum requires momentum > 0");
  EXPECT_DEATH(SGD({Param({1})}, Options(0.1f, 0.9f, 0.5f, 0, true)),
               "SGD: nesterov momentum requires");
}

// ---- "Dive into Deep Learning", section "Weight Decay", from scratch --------
//
// High-dimensional linear regression with few examples:
//   y = 0.05 + sum_i 0.01 x_i + eps,  x ~ N(0, 1)^200,  eps ~ N(0, 0.01^2),
// 20 training and 100 test examples; w ~ N(0, 1) [200, 1], b = 0; minibatch
// SGD with batch 5 (reshuffled every epoch), lr 0.003, 100 epochs, on the
// squared loss (y_hat - y)^2 / 2 plus lambda/2 ||w||^2, averaged over the
// batch. Without decay, w overfits the 20 examples and keeps most of its
// initial norm (~sqrt(200)); with lambda = 3 it shrinks by roughly
// (1 - 0.003 * 3)^400 and generalizes better.
//
// The final norms follow the chi(200)-distributed initial norm (std ~0.7):
// over seeds 0..39 they ranged over [12.16, 15.06] for lambda = 0 (seed 18
// is the one above 15) and [0.330, 0.411] for lambda = 3.

struct WeightDecayResult {
  float w_norm;
  float train_loss;
  float test_loss;
};

// Mean over the rows of (x w + b - y)^2 / 2.
float SquaredLoss(const Tensor& x, const Tensor& y, const autograd::Variable& w,
                  const autograd::Variable& b) {
  autograd::NoGradGuard no_grad;
  const autograd::Variable diff =
      MatMul(autograd::Variable(x), w) + b - autograd::Variable(y);
  return Mean(Square(diff) * 0.5f).data().item();
}

// Trains as in the book. With `decay_in_optimizer` the penalty is SGD's
// weight decay on w (the bias has its own group without decay); otherwise
// it is the explicit lambda/2 ||w||^2 term in the loss, as the book writes
// it. Both must give the same trajectory up to rounding.
WeightDecayResult TrainWeightDecay(float lambda, bool decay_in_optimizer,
                                   uint64_t seed) {
  constexpr int64_t kInputs = 200, kTrain = 20, kTest = 100, kBatch = 5;
  constexpr int kEpochs = 100;
  constexpr float kLr = 0.003f;
  Generator gen(seed);
  const Tensor true_w = Tensor::Full({kInputs, 1}, 0.01f);
  auto synthetic = [&](int64_t n, Tensor* x, Tensor* y) {
    *x = gen.Normal({n, kInputs}, 0.0f, 1.0f);
    *y = ops::AddScalar(
        ops::Add(ops::MatMul(*x, true_w), gen.Normal({n, 1}, 0.0f, 0.01f)),
        0.05f);
  };
  Tensor train_x, train_y, test_x, test_y;
  synthetic(kTrain, &train_x, &train_y);
  synthetic(kTest, &test_x, &test_y);

  autograd::Variable w(gen.Normal({kInputs, 1}, 0.0f, 1.0f),
                       /*requires_grad=*/true);
  autograd::Variable b(Tensor::Zeros({1}), /*requires_grad=*/true);
  SGD sgd({w}, Options(kLr, 0, 0, decay_in_optimizer ? lambda : 0.0f));
  sgd.AddParamGroup({{b}, kLr, /*weight_decay=*/0.0f});

  Tensor batch_x = Tensor::Empty({kBatch, kInputs});
  Tensor batch_y = Tensor::Empty({kBatch, 1});
  for (int epoch = 0; epoch < kEpochs; ++epoch) {
    const std::vector<int64_t> order = gen.Permutation(kTrain);
    for (int64_t start = 0; start < kTrain; start += kBatch) {
      for (int64_t i = 0; i < kBatch; ++i) {
        batch_x.Select(0, i).CopyFrom(train_x.Select(0, order[start + i]));
        batch_y.Select(0, i).CopyFrom(train_y.Select(0, order[start + i]));
      }
      const autograd::Variable y_hat =
          MatMul(autograd::Variable(batch_x), w) + b;
      autograd::Variable l =
          Square(y_hat - autograd::Variable(batch_y)) * 0.5f;  // [5, 1]
      if (!decay_in_optimizer) l = l + (lambda / 2) * Sum(Square(w));
      autograd::Variable loss = Mean(l);
      sgd.ZeroGrad();
      loss.Backward();
      sgd.Step();
    }
  }
  const Tensor w_data = w.data();
  double sum_sq = 0;
  for (float v : w_data.ToVector()) sum_sq += static_cast<double>(v) * v;
  return {static_cast<float>(std::sqrt(sum_sq)),
          SquaredLoss(train_x, train_y, w, b),
          SquaredLoss(test_x, test_y, w, b)};
}

class WeightDecayExperiment : public ::testing::TestWithParam<uint64_t> {};

TEST_P(WeightDecayExperiment, MatchesTheBook) {
  const uint64_t seed = GetParam();
  const WeightDecayResult none = TrainWeightDecay(0.0f, true, seed);
  const WeightDecayResult decay = TrainWeightDecay(3.0f, true, seed);
  const WeightDecayResult penalty = TrainWeightDecay(3.0f, false, seed);
  const WeightDecayResult none_penalty = TrainWeightDecay(0.0f, false, seed);
  RecordProperty("w_norm_lambda0", std::to_string(none.w_norm));
  RecordProperty("w_norm_lambda3", std::to_string(decay.w_norm));
  // The book: ||w|| ~ 13-14 without decay, ~ 0.35-0.45 with lambda = 3.
  EXPECT_GE(none.w_norm, 12.0f);
  EXPECT_LE(none.w_norm, 15.0f);
  EXPECT_GE(decay.w_norm, 0.3f);
  EXPECT_LE(decay.w_norm, 0.5f);
  // Without decay the 20 examples are fit (almost) exactly but the test
  // loss is huge; decay trades training fit for test loss.
  EXPECT_LT(none.train_loss, decay.train_loss);
  EXPECT_LT(decay.test_loss, none.test_loss);
  // Weight decay in SGD is the L2 penalty in the loss.
  EXPECT_NEAR(penalty.w_norm, decay.w_norm, 1e-4f * decay.w_norm);
  EXPECT_NEAR(penalty.test_loss, decay.test_loss, 1e-3f * decay.test_loss);
  EXPECT_EQ(none_penalty.w_norm, none.w_norm);
  std::printf(
      "seed %llu: ||w|| = %.4f (lambda 0), %.4f (lambda 3, SGD decay), "
      "%.4f (lambda 3, penalty); test loss %.4f vs %.4f; train loss %.3g "
      "vs %.3g\n",
      static_cast<unsigned long long>(seed), none.w_norm, decay.w_norm,
      penalty.w_norm, none.test_loss, decay.test_loss, none.train_loss,
      decay.train_loss);
}

INSTANTIATE_TEST_SUITE_P(Seeds, WeightDecayExperiment,
                         ::testing::Values(0, 1, 42));

}  // namespace
}  // namespace dive::optim
