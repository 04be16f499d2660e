// File: optim/lr_schedule.h
// -----------------------------------------------------------------------------
//
// Learning-rate schedules that are stepped once per epoch, with the semantics
// of PyTorch's `StepLR` and `CosineAnnealingLR`. A schedule remembers the
// learning rate of every parameter group of its optimizer at construction
// (the base rates) and epoch 0; each `Step()` advances the epoch and writes
// the closed-form rate for the new epoch into every group:
//
//   StepLR:             lr = base_lr * gamma^floor(epoch / step_size)
//   CosineAnnealingLR:  lr = eta_min + (base_lr - eta_min)
//                                      * (1 + cos(pi * epoch / T_max)) / 2
//
// (PyTorch computes the cosine schedule recursively; both forms agree, and
// past T_max the closed form keeps following the cosine, as PyTorch does.)
//
// Example:
//
//   SGD sgd(model.Parameters(), {/*lr=*/0.1f});
//   StepLR schedule(sgd, /*step_size=*/30, /*gamma=*/0.1f);
//   for (int epoch = 0; epoch < 90; ++epoch) {
//     TrainOneEpoch(model, sgd);   // lr 0.1, then 0.01 from epoch 30, ...
//     schedule.Step();
//   }

#ifndef OPTIM_LR_SCHEDULE_H_
#define OPTIM_LR_SCHEDULE_H_

#include <vector>

#include "optim/optimizer.h"

namespace dive::optim {

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  LrSchedule(const LrSchedule&) = delete;
  LrSchedule& operator=(const LrSchedule&) = delete;

  // Step()
  //
  // Advances to the next epoch and sets the learning rate of every group of
  // the optimizer. Call once per epoch, after that epoch's optimizer steps.
  void Step();

  // SetEpoch()
  //
  // Moves to `epoch` as if `Step()` had been called that many times (a
  // resumed run) and sets the rates. CHECK-fails on a negative epoch.
  void SetEpoch(int epoch);

  // GetLr()
  //
  // The learning rate of parameter group `group` at the current epoch.
  float GetLr(int group = 0) const;

  // epoch()
  //
  // The number of `Step()` calls so far.
  int epoch() const { return epoch_; }

 protected:
  // Records the optimizer's current per-group rates as the base rates. The
  // optimizer must outlive the schedule.
  explicit LrSchedule(Optimizer& optimizer);

  // LrAt()
  //
  // The learning rate at `epoch` of a group whose base rate is `base_lr`.
  // Must return `base_lr` at epoch 0 (the constructor leaves the rates as
  // they are).
  virtual double LrAt(double base_lr, int epoch) const = 0;

 private:
  Optimizer& optimizer_;
  std::vector<float> base_lrs_;
  int epoch_ = 0;
};

// Multiplies the rate by `gamma` every `step_size` epochs.
class StepLR : public LrSchedule {
 public:
  // CHECK-fails unless step_size > 0.
  StepLR(Optimizer& optimizer, int step_size, float gamma = 0.1f);

 protected:
  double LrAt(double base_lr, int epoch) const override;

 private:
  int step_size_;
  float gamma_;
};

// Anneals the rate from its base value to `eta_min` over `t_max` epochs along
// half a cosine (SGDR without restarts).
class CosineAnnealingLR : public LrSchedule {
 public:
  // CHECK-fails unless t_max > 0.
  CosineAnnealingLR(Optimizer& optimizer, int t_max, float eta_min = 0.0f);

 protected:
  double LrAt(double base_lr, int epoch) const override;

 private:
  int t_max_;
  float eta_min_;
};

}  // namespace dive::optim

#endif  // OPTIM_LR_SCHEDULE_H_
