#include "optim/lr_schedule.h"

#include <cmath>
#include <utility>

#include "glog/logging.h"

namespace dive::optim {

double ConstantLR::LrAt(double base_lr, int64_t, int64_t) const {
  return base_lr;
}

StepLR::StepLR(int64_t step_size, double gamma)
    : step_size_(step_size), gamma_(gamma) {
  CHECK_GT(step_size, 0) << "StepLR: step_size must be positive";
}

double StepLR::LrAt(double base_lr, int64_t epoch, int64_t) const {
  return base_lr * std::pow(gamma_, static_cast<double>(epoch / step_size_));
}

CosineAnnealingLR::CosineAnnealingLR(int64_t t_max, double eta_min)
    : t_max_(t_max), eta_min_(eta_min) {
  CHECK_GT(t_max, 0) << "CosineAnnealingLR: T_max must be positive";
}

double CosineAnnealingLR::LrAt(double base_lr, int64_t epoch, int64_t) const {
  const double pi = std::acos(-1.0);
  return eta_min_ + (base_lr - eta_min_) *
                        (1.0 + std::cos(pi * static_cast<double>(epoch) /
                                        static_cast<double>(t_max_))) /
                        2.0;
}

LinearWarmup::LinearWarmup(std::unique_ptr<LrSchedule> then,
                           int64_t warmup_steps)
    : then_(std::move(then)), warmup_steps_(warmup_steps) {
  CHECK(then_ != nullptr) << "LinearWarmup: no schedule to warm up";
  CHECK_GE(warmup_steps, 0) << "LinearWarmup: negative warmup_steps";
}

double LinearWarmup::LrAt(double base_lr, int64_t epoch, int64_t step) const {
  const double lr = then_->LrAt(base_lr, epoch, step);
  if (step >= warmup_steps_) return lr;
  return lr * static_cast<double>(step + 1) /
         static_cast<double>(warmup_steps_);
}

}  // namespace dive::optim
