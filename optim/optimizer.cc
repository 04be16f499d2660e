#include "optim/optimizer.h"

#include <utility>

#include "absl/container/flat_hash_set.h"

namespace dive::optim {

Optimizer::Optimizer(std::string name, std::vector<Variable> params, float lr,
                     float weight_decay)
    : name_(std::move(name)) {
  CHECK(!params.empty()) << name_ << ": empty parameter list";
  AddParamGroup({std::move(params), lr, weight_decay});
}

void Optimizer::AddParamGroup(ParamGroup group) {
  CHECK(!group.params.empty()) << name_ << ": empty parameter list";
  CHECK_GE(group.lr, 0.0f) << name_ << ": negative learning rate";
  CHECK_GE(group.weight_decay, 0.0f) << name_ << ": negative weight decay";
  absl::flat_hash_set<const GradNode*> seen;
  for (const ParamGroup& g : groups_) {
    for (const Variable& p : g.params) seen.insert(p.node().get());
  }
  for (size_t i = 0; i < group.params.size(); ++i) {
    const Variable& p = group.params[i];
    CHECK(p.defined()) << name_ << ": parameter " << i << " of group "
                       << groups_.size() << " is undefined";
    CHECK(p.node() != nullptr && p.is_leaf())
        << name_ << ": parameter " << i << " of group " << groups_.size()
        << " (shape " << p.shape() << ", op " << p.op()
        << ") is not a leaf; optimize Variable(tensor, true) leaves";
    CHECK(p.data().dtype() == DType::kFloat32)
        << name_ << ": parameter " << i << " of group " << groups_.size()
        << " has dtype " << DTypeName(p.data().dtype()) << ", not float32";
    CHECK(p.data().is_contiguous())
        << name_ << ": parameter " << i << " of group " << groups_.size()
        << " (shape " << p.shape() << ") is not contiguous";
    CHECK(seen.insert(p.node().get()).second)
        << name_ << ": parameter " << i << " of group " << groups_.size()
        << " (shape " << p.shape() << ") appears more than once";
  }
  groups_.push_back(std::move(group));
}

void Optimizer::Step() {
  NoGradGuard no_grad;
  for (const ParamGroup& group : groups_) {
    for (const Variable& p : group.params) {
      const Tensor& grad = p.grad();
      if (!grad.defined()) continue;
      // Shapes already agree (Variable::set_grad and Backward check them);
      // a gradient set by hand may be a strided view.
      ParamState& state = states_[p.node().get()];
      ++state.step;
      Update(group, p.data(), grad.Contiguous(), state);
    }
  }
}

void Optimizer::ZeroGrad() {
  for (ParamGroup& group : groups_) {
    for (Variable& p : group.params) p.ZeroGrad();
  }
}

void Optimizer::set_lr(float lr) {
  CHECK_GE(lr, 0.0f) << name_ << ": negative learning rate";
  for (ParamGroup& group : groups_) group.lr = lr;
}

const ParamState* Optimizer::state(const Variable& param) const {
  auto it = states_.find(param.node().get());
  return it == states_.end() ? nullptr : &it->second;
}

}  // namespace dive::optim
