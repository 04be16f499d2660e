#include "optim/lr_schedule.h"

#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "optim/sgd.h"
#include "tensor/tensor.h"

namespace dive::optim {
namespace {

// Written by optim/testdata/make_lr_goldens.py from PyTorch 1.13's
// schedulers: SGD with two groups of base rates 0.1 and 0.02, 3 steps per
// epoch, LinearLR warm-up stepped per batch chained with a per-epoch
// StepLR or CosineAnnealingLR.
constexpr double kBase[2] = {0.1, 0.02};
constexpr int kStepsPerEpoch = 3;
// kWarmup8ThenStep2Gamma05: {group 0, group 1} for each step of the run.
constexpr double kWarmup8ThenStep2Gamma05[][2] = {
    {0.0125, 0.0025},
    {0.025, 0.005},
    {0.037500000000000006, 0.0075},
    {0.05, 0.009999999999999998},
    {0.0625, 0.012499999999999997},
    {0.075, 0.014999999999999996},
    {0.043750000000000004, 0.008749999999999997},
    {0.05, 0.009999999999999997},
    {0.05, 0.009999999999999997},
    {0.05, 0.009999999999999997},
    {0.05, 0.009999999999999997},
    {0.05, 0.009999999999999997},
    {0.025, 0.004999999999999998},
    {0.025, 0.004999999999999998},
    {0.025, 0.004999999999999998},
    {0.025, 0.004999999999999998},
    {0.025, 0.004999999999999998},
    {0.025, 0.004999999999999998},
};
// kWarmup5ThenCosine4: {group 0, group 1} for each step of the run.
constexpr double kWarmup5ThenCosine4[][2] = {
    {0.020000000000000004, 0.004},
    {0.04000000000000001, 0.008},
    {0.06000000000000001, 0.012},
    {0.0682842712474619, 0.01365685424949238},
    {0.08535533905932738, 0.017071067811865473},
    {0.08535533905932738, 0.017071067811865473},
    {0.05, 0.009999999999999998},
    {0.05, 0.009999999999999998},
    {0.05, 0.009999999999999998},
    {0.014644660940672627, 0.002928932188134525},
    {0.014644660940672627, 0.002928932188134525},
    {0.014644660940672627, 0.002928932188134525},
    {0.0, 0.0},
    {0.0, 0.0},
    {0.0, 0.0},
    {0.014644660940672622, 0.0029289321881345244},
    {0.014644660940672622, 0.0029289321881345244},
    {0.014644660940672622, 0.0029289321881345244},
};

// Checks `schedule` against `golden` twice: the rates it computes, and the
// rates an SGD step over two groups (gradient 1, so each weight falls by
// its group's rate) actually takes.
template <size_t kSteps>
void ExpectPyTorchRates(const LrSchedule& schedule,
                        const double (&golden)[kSteps][2]) {
  std::vector<autograd::Variable> w;
  for (int g = 0; g < 2; ++g) {
    w.emplace_back(Tensor::Zeros({1}), /*requires_grad=*/true);
  }
  SGDOptions options;
  options.lr = static_cast<float>(kBase[0]);
  SGD sgd({w[0]}, options);
  sgd.AddParamGroup({{w[1]}, static_cast<float>(kBase[1])});
  for (size_t step = 0; step < kSteps; ++step) {
    const int64_t epoch = step / kStepsPerEpoch;
    for (int g = 0; g < 2; ++g) {
      EXPECT_NEAR(schedule.LrAt(kBase[g], epoch, step), golden[step][g],
                  1e-12)
          << "group " << g << " step " << step;
      w[g].data().data()[0] = 0.0f;
      w[g].set_grad(Tensor::Ones({1}));
    }
    sgd.Step(schedule, epoch, step);
    for (int g = 0; g < 2; ++g) {
      // The rate as the float SGD multiplies by.
      EXPECT_FLOAT_EQ(-w[g].data().item(), static_cast<float>(golden[step][g]))
          << "SGD's step of group " << g << " at step " << step;
    }
  }
  // The base rates are untouched: nothing but the schedule computes a rate.
  EXPECT_EQ(sgd.param_groups()[0].lr, static_cast<float>(kBase[0]));
  EXPECT_EQ(sgd.param_groups()[1].lr, static_cast<float>(kBase[1]));
}

TEST(LrScheduleTest, WarmupThenStepMatchesPyTorchOverTwoGroups) {
  ExpectPyTorchRates(LinearWarmup(std::make_unique<StepLR>(2, 0.5), 8),
                     kWarmup8ThenStep2Gamma05);
}

TEST(LrScheduleTest, WarmupThenCosineMatchesPyTorchOverTwoGroups) {
  ExpectPyTorchRates(LinearWarmup(std::make_unique<CosineAnnealingLR>(4), 5),
                     kWarmup5ThenCosine4);
}

TEST(StepLRTest, DecaysEveryStepSizeEpochs) {
  const StepLR schedule(/*step_size=*/2, /*gamma=*/0.5);
  const std::vector<double> expected = {1, 1, 0.5, 0.5, 0.25, 0.25, 0.125};
  for (int epoch = 0; epoch < static_cast<int>(expected.size()); ++epoch) {
    EXPECT_DOUBLE_EQ(schedule.LrAt(1.0, epoch, /*step=*/0), expected[epoch])
        << "epoch " << epoch;
    // Per epoch: the step within the run does not matter.
    EXPECT_DOUBLE_EQ(schedule.LrAt(1.0, epoch, 1000), expected[epoch]);
  }
}

TEST(CosineAnnealingLRTest, FollowsHalfACosine) {
  const CosineAnnealingLR schedule(/*t_max=*/10, /*eta_min=*/0.1);
  // eta_min + (1 - eta_min) * (1 + cos(pi * epoch / 10)) / 2, worked out:
  //   epoch 2:  cos(pi/5) = 0.80901699  -> 0.1 + 0.9 * 0.90450850
  //   epoch 5:  cos(pi/2) = 0           -> 0.55
  //   epoch 8:  cos(4pi/5) = -0.80901699 -> 0.1 + 0.9 * 0.09549150
  //   epoch 10: cos(pi) = -1            -> 0.1
  //   epoch 15: cos(3pi/2) = 0          -> 0.55 (past T_max it rises again)
  //   epoch 20: cos(2pi) = 1            -> 1
  const std::vector<std::pair<int, double>> expected = {
      {0, 1.0},  {2, 0.91405765}, {5, 0.55}, {8, 0.18594235},
      {10, 0.1}, {15, 0.55},      {20, 1.0}};
  for (const auto& [epoch, lr] : expected) {
    EXPECT_NEAR(schedule.LrAt(1.0, epoch, 0), lr, 1e-8) << "epoch " << epoch;
  }
  EXPECT_NEAR(CosineAnnealingLR(4).LrAt(0.4, 1, 0), 0.34142136, 1e-8);
  EXPECT_NEAR(CosineAnnealingLR(4).LrAt(0.4, 4, 0), 0.0, 1e-12);
}

TEST(LinearWarmupTest, ScalesTheFirstStepsOnly) {
  const LinearWarmup warmup(std::make_unique<ConstantLR>(), 4);
  EXPECT_DOUBLE_EQ(warmup.LrAt(0.8, 0, 0), 0.2);
  EXPECT_DOUBLE_EQ(warmup.LrAt(0.8, 0, 3), 0.8);
  EXPECT_DOUBLE_EQ(warmup.LrAt(0.8, 5, 4), 0.8);
  // No warm-up is the schedule itself.
  EXPECT_DOUBLE_EQ(LinearWarmup(std::make_unique<StepLR>(1), 0).LrAt(1, 2, 0),
                   StepLR(1).LrAt(1, 2, 0));
}

TEST(LrScheduleTest, PlainStepIsTheConstantSchedule) {
  autograd::Variable a(Tensor::Zeros({1}), /*requires_grad=*/true);
  autograd::Variable b(Tensor::Zeros({1}), /*requires_grad=*/true);
  SGDOptions options;
  options.lr = 0.5f;
  SGD plain({a}, options), constant({b}, options);
  a.set_grad(Tensor::Ones({1}));
  b.set_grad(Tensor::Ones({1}));
  plain.Step();
  constant.Step(ConstantLR(), /*epoch=*/7, /*step=*/99);
  EXPECT_EQ(a.data().item(), -0.5f);
  EXPECT_EQ(b.data().item(), -0.5f);
}

TEST(LrScheduleDeathTest, InvalidArguments) {
  EXPECT_DEATH(StepLR(0), "StepLR: step_size must be positive");
  EXPECT_DEATH(CosineAnnealingLR(0), "CosineAnnealingLR: T_max");
  EXPECT_DEATH(LinearWarmup(nullptr, 1), "LinearWarmup: no schedule");
  EXPECT_DEATH(LinearWarmup(std::make_unique<ConstantLR>(), -1),
               "LinearWarmup: negative warmup_steps");
}

}  // namespace
}  // namespace dive::optim
