#include "optim/lr_schedule.h"

#include <cmath>

#include "glog/logging.h"

namespace dive::optim {

LrSchedule::LrSchedule(Optimizer& optimizer) : optimizer_(optimizer) {
  for (const ParamGroup& group : optimizer.param_groups()) {
    base_lrs_.push_back(group.lr);
  }
}

void LrSchedule::Step() { SetEpoch(epoch_ + 1); }

void LrSchedule::SetEpoch(int epoch) {
  CHECK_GE(epoch, 0) << "LrSchedule: negative epoch";
  std::vector<ParamGroup>& groups = optimizer_.param_groups();
  CHECK_EQ(groups.size(), base_lrs_.size())
      << "LrSchedule: the optimizer had " << base_lrs_.size()
      << " parameter groups when the schedule was made and has "
      << groups.size() << " now";
  epoch_ = epoch;
  for (size_t g = 0; g < groups.size(); ++g) {
    groups[g].lr = static_cast<float>(LrAt(base_lrs_[g], epoch_));
  }
}

float LrSchedule::GetLr(int group) const {
  CHECK(group >= 0 && group < static_cast<int>(base_lrs_.size()))
      << "LrSchedule: no parameter group " << group << " (have "
      << base_lrs_.size() << ")";
  return static_cast<float>(LrAt(base_lrs_[group], epoch_));
}

StepLR::StepLR(Optimizer& optimizer, int step_size, float gamma)
    : LrSchedule(optimizer), step_size_(step_size), gamma_(gamma) {
  CHECK_GT(step_size, 0) << "StepLR: step_size must be positive";
}

double StepLR::LrAt(double base_lr, int epoch) const {
  return base_lr * std::pow(static_cast<double>(gamma_), epoch / step_size_);
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int t_max,
                                     float eta_min)
    : LrSchedule(optimizer), t_max_(t_max), eta_min_(eta_min) {
  CHECK_GT(t_max, 0) << "CosineAnnealingLR: T_max must be positive";
}

double CosineAnnealingLR::LrAt(double base_lr, int epoch) const {
  const double pi = std::acos(-1.0);
  return eta_min_ +
         (base_lr - eta_min_) * (1.0 + std::cos(pi * epoch / t_max_)) / 2.0;
}

}  // namespace dive::optim
