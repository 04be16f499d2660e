#include "optim/lr_schedule.h"

#include <utility>
#include <vector>

#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "optim/sgd.h"
#include "tensor/tensor.h"

namespace dive::optim {
namespace {

autograd::Variable Param() {
  return autograd::Variable(Tensor::Zeros({1}), /*requires_grad=*/true);
}

SGDOptions Lr(float lr) {
  SGDOptions options;
  options.lr = lr;
  return options;
}

TEST(StepLRTest, DecaysEveryStepSizeEpochs) {
  SGD sgd({Param()}, Lr(1.0f));
  StepLR schedule(sgd, /*step_size=*/2, /*gamma=*/0.5f);
  // Epochs 0..6.
  const std::vector<float> expected = {1, 1, 0.5, 0.5, 0.25, 0.25, 0.125};
  for (int epoch = 0; epoch < static_cast<int>(expected.size()); ++epoch) {
    EXPECT_EQ(schedule.epoch(), epoch);
    EXPECT_FLOAT_EQ(schedule.GetLr(), expected[epoch]) << "epoch " << epoch;
    EXPECT_FLOAT_EQ(sgd.lr(), expected[epoch]) << "epoch " << epoch;
    schedule.Step();
  }
}

TEST(StepLRTest, EveryGroupFromItsOwnBaseRate) {
  autograd::Variable a = Param();
  autograd::Variable b = Param();
  SGD sgd({a}, Lr(0.1f));
  sgd.AddParamGroup({{b}, 0.02f});
  StepLR schedule(sgd, /*step_size=*/3);  // gamma 0.1
  for (int i = 0; i < 3; ++i) schedule.Step();
  EXPECT_FLOAT_EQ(sgd.param_groups()[0].lr, 0.01f);
  EXPECT_FLOAT_EQ(sgd.param_groups()[1].lr, 0.002f);
  EXPECT_FLOAT_EQ(schedule.GetLr(1), 0.002f);
  for (int i = 0; i < 3; ++i) schedule.Step();
  EXPECT_FLOAT_EQ(sgd.param_groups()[0].lr, 0.001f);
  EXPECT_FLOAT_EQ(sgd.param_groups()[1].lr, 0.0002f);
}

TEST(CosineAnnealingLRTest, FollowsHalfACosine) {
  SGD sgd({Param()}, Lr(1.0f));
  CosineAnnealingLR schedule(sgd, /*t_max=*/10, /*eta_min=*/0.1f);
  // eta_min + (1 - eta_min) * (1 + cos(pi * epoch / 10)) / 2, worked out:
  //   epoch 2:  cos(pi/5) = 0.80901699  -> 0.1 + 0.9 * 0.90450850
  //   epoch 5:  cos(pi/2) = 0           -> 0.55
  //   epoch 8:  cos(4pi/5) = -0.80901699 -> 0.1 + 0.9 * 0.09549150
  //   epoch 10: cos(pi) = -1            -> 0.1
  //   epoch 15: cos(3pi/2) = 0          -> 0.55 (past T_max it rises again)
  //   epoch 20: cos(2pi) = 1            -> 1
  const std::vector<std::pair<int, float>> expected = {
      {0, 1.0f},  {2, 0.91405765f}, {5, 0.55f}, {8, 0.18594235f},
      {10, 0.1f}, {15, 0.55f},      {20, 1.0f}};
  for (const auto& [epoch, lr] : expected) {
    while (schedule.epoch() < epoch) schedule.Step();
    EXPECT_NEAR(schedule.GetLr(), lr, 1e-6f) << "epoch " << epoch;
    EXPECT_NEAR(sgd.lr(), lr, 1e-6f) << "epoch " << epoch;
  }
}

TEST(CosineAnnealingLRTest, DefaultEtaMinIsZero) {
  SGD sgd({Param()}, Lr(0.4f));
  CosineAnnealingLR schedule(sgd, /*t_max=*/4);
  schedule.Step();  // cos(pi/4): 0.4 * (1 + 0.70710678) / 2
  EXPECT_NEAR(sgd.lr(), 0.34142136f, 1e-6f);
  for (int i = 0; i < 3; ++i) schedule.Step();
  EXPECT_NEAR(sgd.lr(), 0.0f, 1e-7f);
}

TEST(LrScheduleTest, SetEpochIsThatManySteps) {
  SGD stepped({Param()}, Lr(1.0f));
  CosineAnnealingLR a(stepped, /*t_max=*/7, /*eta_min=*/0.01f);
  for (int i = 0; i < 5; ++i) a.Step();
  SGD jumped({Param()}, Lr(1.0f));
  CosineAnnealingLR b(jumped, /*t_max=*/7, /*eta_min=*/0.01f);
  b.SetEpoch(5);
  EXPECT_EQ(b.epoch(), 5);
  EXPECT_EQ(jumped.lr(), stepped.lr());
  EXPECT_LT(jumped.lr(), 0.5f);
  b.SetEpoch(0);
  EXPECT_EQ(jumped.lr(), 1.0f);
}

TEST(LrScheduleDeathTest, InvalidArguments) {
  SGD sgd({Param()}, Lr(1.0f));
  EXPECT_DEATH(StepLR(sgd, 0), "StepLR: step_size must be positive");
  EXPECT_DEATH(CosineAnnealingLR(sgd, 0), "CosineAnnealingLR: T_max");
}

TEST(LrScheduleDeathTest, GroupAddedAfterTheSchedule) {
  SGD sgd({Param()}, Lr(1.0f));
  StepLR schedule(sgd, 1);
  sgd.AddParamGroup({{Param()}, 1.0f});
  EXPECT_DEATH(schedule.Step(), "had 1 parameter groups");
}

}  // namespace
}  // namespace dive::optim
