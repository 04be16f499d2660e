// File: optim/lr_schedule.h
// -----------------------------------------------------------------------------
//
// Learning-rate schedules: the rate of a parameter group as a function of
// where the run is. A schedule stores no rate: each parameter group keeps
// its base rate (`ParamGroup::lr`, PyTorch's `initial_lr`), and the
// optimizer asks the schedule for the rate of each group at each step
// (`Optimizer::Step(schedule, epoch, step)`), so the rate has one owner and
// a resumed run needs nothing but its position to get it back.
//
//   ConstantLR:         lr = base_lr
//   StepLR:             lr = base_lr * gamma^floor(epoch / step_size)
//   CosineAnnealingLR:  lr = eta_min + (base_lr - eta_min)
//                                      * (1 + cos(pi * epoch / T_max)) / 2
//   LinearWarmup:       lr = then(base_lr) * min(1, (step + 1) / W)
//
// StepLR and CosineAnnealingLR change once per epoch, as PyTorch's do when
// stepped once per epoch (PyTorch computes the cosine recursively; both
// forms agree, and past T_max the closed form keeps following the cosine, as
// PyTorch does). LinearWarmup scales any schedule linearly from 1/W to 1
// over the first W optimizer steps, as PyTorch's
// `LinearLR(start_factor=1/W, total_iters=W-1)` stepped after every batch,
// chained with the per-epoch schedule.
//
// Example:
//
//   SGD sgd(model.Parameters(), {/*lr=*/0.1f});
//   LinearWarmup schedule(std::make_unique<StepLR>(/*step_size=*/30),
//                         /*warmup_steps=*/500);
//   int64_t step = 0;
//   for (int epoch = 0; epoch < 90; ++epoch) {
//     for (...) {                        // each batch
//       ...; loss.Backward();
//       sgd.Step(schedule, epoch, step++);  // 0.1 / 500 ... 0.1, then 0.01
//     }
//   }

#ifndef OPTIM_LR_SCHEDULE_H_
#define OPTIM_LR_SCHEDULE_H_

#include <cstdint>
#include <memory>

namespace dive::optim {

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;

  // LrAt()
  //
  // The rate of a group whose base rate is `base_lr` for the optimizer step
  // taken in epoch `epoch` (0-based: the epochs completed before it) after
  // `step` optimizer steps of the whole run.
  virtual double LrAt(double base_lr, int64_t epoch, int64_t step) const = 0;
};

// The base rate, always.
class ConstantLR final : public LrSchedule {
 public:
  double LrAt(double base_lr, int64_t epoch, int64_t step) const override;
};

// Multiplies the rate by `gamma` every `step_size` epochs.
class StepLR final : public LrSchedule {
 public:
  // CHECK-fails unless step_size > 0.
  explicit StepLR(int64_t step_size, double gamma = 0.1);
  double LrAt(double base_lr, int64_t epoch, int64_t step) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// Anneals the rate from its base value to `eta_min` over `t_max` epochs along
// half a cosine (SGDR without restarts).
class CosineAnnealingLR final : public LrSchedule {
 public:
  // CHECK-fails unless t_max > 0.
  explicit CosineAnnealingLR(int64_t t_max, double eta_min = 0.0);
  double LrAt(double base_lr, int64_t epoch, int64_t step) const override;

 private:
  int64_t t_max_;
  double eta_min_;
};

// `then`'s rate, scaled by (step + 1) / warmup_steps over the first
// `warmup_steps` steps of the run.
class LinearWarmup final : public LrSchedule {
 public:
  // CHECK-fails unless warmup_steps >= 0 and `then` is set.
  LinearWarmup(std::unique_ptr<LrSchedule> then, int64_t warmup_steps);
  double LrAt(double base_lr, int64_t epoch, int64_t step) const override;

 private:
  std::unique_ptr<LrSchedule> then_;
  int64_t warmup_steps_;
};

}  // namespace dive::optim

#endif  // OPTIM_LR_SCHEDULE_H_
