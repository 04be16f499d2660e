// File: optim/optimizer.h
// -----------------------------------------------------------------------------
//
// `Optimizer` is the base of the first-order optimizers (`SGD`, `Adam`,
// `AdamW`). It owns one or more parameter groups, each a list of parameters
// with its own base learning rate and weight decay, and does the bookkeeping
// that every optimizer shares:
//
//   * `Step()` runs under `NoGradGuard`, skips parameters whose gradient is
//     undefined (they took no part in the last backward pass), and hands each
//     remaining parameter to the subclass's `Update()`.
//   * Per-parameter state (a step count and optimizer-specific buffers such as
//     SGD's momentum buffer or Adam's moments) is created lazily on the first
//     update of a parameter and keyed by its `GradNode`, like PyTorch's
//     `state[p]`. Copies of a `Variable` share that node, so they share state.
//   * `ZeroGrad()` clears the gradients (PyTorch's `set_to_none=True`).
//   * A learning-rate schedule (optim/lr_schedule.h) is asked for each
//     group's rate at each `Step(schedule, epoch, step)`; the group's `lr`
//     stays its base rate, so nothing holds a stale copy of the rate.
//
// Updates are written in place into `param.data()`, whose storage is shared
// with the model, so the model sees the new values without any copying.
// Parameters must be contiguous float32 leaves (every parameter a module
// registers is). Gradients are only read, never written.
//
// Example:
//
//   std::vector<Variable> params = model.Parameters();
//   SGD sgd(params, {/*lr=*/0.1f, /*momentum=*/0.9f});
//   sgd.AddParamGroup({bias_params, /*lr=*/0.2f, /*weight_decay=*/0.0f});
//   for (...) {
//     sgd.ZeroGrad();
//     Variable loss = ...;
//     loss.Backward();
//     sgd.Step();
//   }
//   sgd.set_lr(0.01f);                     // every group
//   sgd.param_groups()[1].lr = 0.02f;      // one group
//   CosineAnnealingLR cosine(/*t_max=*/10);
//   sgd.Step(cosine, epoch, step);         // each group's rate at epoch
//
// Misuse (an empty parameter list, an undefined or non-leaf parameter, a
// parameter listed twice, a negative learning rate) is a programmer error and
// CHECK-fails with a message that starts with the optimizer's name, e.g.
// "SGD: empty parameter list".

#ifndef OPTIM_OPTIMIZER_H_
#define OPTIM_OPTIMIZER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "autograd/variable.h"
#include "optim/lr_schedule.h"
#include "tensor/tensor.h"

namespace dive::optim {

// A set of parameters updated with the same hyperparameters.
struct ParamGroup {
  std::vector<autograd::Variable> params;
  // The base learning rate: the rate of every step without a schedule, the
  // rate a schedule scales with one.
  float lr;
  // L2 penalty coefficient; its meaning (added to the gradient, or decoupled
  // as in AdamW) is the optimizer's.
  float weight_decay = 0;
};

// What an optimizer remembers about one parameter between steps.
struct ParamState {
  // Number of updates applied to this parameter so far, including the one in
  // progress while `Update()` runs (so it is 1 on the first update).
  int64_t step = 0;
  // Optimizer-specific tensors shaped like the parameter, allocated by the
  // subclass on first use (empty until then).
  std::vector<Tensor> buffers;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Step()
  //
  // Applies one update to every parameter that has a gradient, each group
  // at its base rate. Runs with graph recording disabled.
  void Step();

  // Step(schedule, epoch, step)
  //
  // The same with each group at `schedule.LrAt(group.lr, epoch, step)`:
  // the step taken in epoch `epoch` (0-based) after `step` steps of the run.
  void Step(const LrSchedule& schedule, int64_t epoch, int64_t step);

  // ZeroGrad()
  //
  // Clears the gradient of every parameter (they become undefined, so a
  // parameter that the next backward pass does not reach is skipped by the
  // next `Step()`).
  void ZeroGrad();

  // AddParamGroup()
  //
  // Adds a group with its own learning rate and weight decay. CHECK-fails on
  // an empty group or a parameter already in some group.
  void AddParamGroup(ParamGroup group);

  // lr()
  //
  // The base learning rate of the first group (the only one unless groups
  // were added).
  float lr() const { return groups_.front().lr; }

  // set_lr()
  //
  // Sets the base learning rate of every group. For one group, assign
  // `param_groups()[i].lr`.
  void set_lr(float lr);

  // param_groups()
  //
  // The groups, in the order they were added; hyperparameters may be changed
  // between steps.
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }

  // state()
  //
  // The state of `param`, or nullptr before its first update.
  const ParamState* state(const autograd::Variable& param) const;

  // StateDict()
  //
  // The per-parameter state, for checkpoints: for the i-th parameter over the
  // groups in order (PyTorch's optimizer state_dict also names parameters by
  // position) that has been updated, "<i>.step" (int64, shape [1]) and
  // "<i>.<j>" for its j-th buffer (a copy).
  std::map<std::string, Tensor> StateDict() const;

  // LoadStateDict()
  //
  // Replaces the per-parameter state with `state`, as written by
  // `StateDict()` of an optimizer of this kind and options over parameters of
  // the same shapes. InvalidArgument naming the key (an unknown or missing
  // key, a wrong dtype or shape, a step < 1), and then nothing changes.
  absl::Status LoadStateDict(const std::map<std::string, Tensor>& state);

  // name()
  //
  // The optimizer's name ("SGD", "Adam", ...), which prefixes its messages.
  const std::string& name() const { return name_; }

 protected:
  // Makes the first group from `params`. CHECK-fails with
  // "<name>: empty parameter list" when `params` is empty.
  Optimizer(std::string name, std::vector<autograd::Variable> params, float lr,
            float weight_decay);

  // Update()
  //
  // Updates `param` (contiguous float32, written in place) from `grad`
  // (contiguous, same shape; read only) at learning rate `lr` with the other
  // hyperparameters of `group`. `state.step` has already been incremented
  // for this update.
  virtual void Update(const ParamGroup& group, float lr, const Tensor& param,
                      const Tensor& grad, ParamState& state) = 0;

  // The number of buffers `Update` keeps per parameter (what
  // `LoadStateDict` accepts).
  virtual int NumBuffers() const = 0;

 private:
  std::string name_;
  std::vector<ParamGroup> groups_;
  absl::flat_hash_map<const autograd::GradNode*, ParamState> states_;
};

}  // namespace dive::optim

#endif  // OPTIM_OPTIMIZER_H_
