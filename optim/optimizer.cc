#include "optim/optimizer.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dive::optim {

Optimizer::Optimizer(std::string name, std::vector<autograd::Variable> params,
                     float lr, float weight_decay)
    : name_(std::move(name)) {
  CHECK(!params.empty()) << name_ << ": empty parameter list";
  AddParamGroup({std::move(params), lr, weight_decay});
}

void Optimizer::AddParamGroup(ParamGroup group) {
  CHECK(!group.params.empty()) << name_ << ": empty parameter list";
  CHECK_GE(group.lr, 0.0f) << name_ << ": negative learning rate";
  CHECK_GE(group.weight_decay, 0.0f) << name_ << ": negative weight decay";
  absl::flat_hash_set<const autograd::GradNode*> seen;
  for (const ParamGroup& g : groups_) {
    for (const autograd::Variable& p : g.params) seen.insert(p.node().get());
  }
  for (size_t i = 0; i < group.params.size(); ++i) {
    const autograd::Variable& p = group.params[i];
    CHECK(p.defined()) << name_ << ": parameter " << i << " of group "
                       << groups_.size() << " is undefined";
    CHECK(p.node() != nullptr && p.is_leaf())
        << name_ << ": parameter " << i << " of group " << groups_.size()
        << " (shape " << p.shape() << ", op " << p.op()
        << ") is not a leaf; optimize autograd::Variable(tensor, true) leaves";
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

void Optimizer::Step() { Step(ConstantLR(), 0, 0); }

void Optimizer::Step(const LrSchedule& schedule, int64_t epoch, int64_t step) {
  autograd::NoGradGuard no_grad;
  for (const ParamGroup& group : groups_) {
    const float lr = static_cast<float>(schedule.LrAt(group.lr, epoch, step));
    for (const autograd::Variable& p : group.params) {
      const Tensor& grad = p.grad();
      if (!grad.defined()) continue;
      // Shapes already agree (Variable::set_grad and Backward check them);
      // a gradient set by hand may be a strided view.
      ParamState& state = states_[p.node().get()];
      ++state.step;
      Update(group, lr, p.data(), grad.Contiguous(), state);
    }
  }
}

void Optimizer::ZeroGrad() {
  for (ParamGroup& group : groups_) {
    for (autograd::Variable& p : group.params) p.ZeroGrad();
  }
}

void Optimizer::set_lr(float lr) {
  CHECK_GE(lr, 0.0f) << name_ << ": negative learning rate";
  for (ParamGroup& group : groups_) group.lr = lr;
}

const ParamState* Optimizer::state(const autograd::Variable& param) const {
  auto it = states_.find(param.node().get());
  return it == states_.end() ? nullptr : &it->second;
}

std::map<std::string, Tensor> Optimizer::StateDict() const {
  std::map<std::string, Tensor> out;
  int64_t index = 0;
  for (const ParamGroup& group : groups_) {
    for (const autograd::Variable& p : group.params) {
      auto it = states_.find(p.node().get());
      if (it != states_.end()) {
        const ParamState& st = it->second;
        out[absl::StrCat(index, ".step")] =
            Tensor::FromInt64Vector({st.step}, {1});
        for (size_t j = 0; j < st.buffers.size(); ++j) {
          out[absl::StrCat(index, ".", j)] = st.buffers[j].Clone();
        }
      }
      ++index;
    }
  }
  return out;
}

absl::Status Optimizer::LoadStateDict(
    const std::map<std::string, Tensor>& state) {
  std::vector<const autograd::Variable*> params;
  for (const ParamGroup& group : groups_) {
    for (const autograd::Variable& p : group.params) params.push_back(&p);
  }
  const auto bad = [this](absl::string_view key, absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, " state '", key, "': ", why));
  };
  // Everything is checked before anything changes.
  absl::flat_hash_map<const autograd::GradNode*, ParamState> loaded;
  for (const auto& [key, tensor] : state) {
    const std::vector<absl::string_view> parts = absl::StrSplit(key, '.');
    int64_t i = -1;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &i) || i < 0 ||
        i >= static_cast<int64_t>(params.size())) {
      return bad(key, absl::StrCat("not a key of an optimizer over ",
                                   params.size(), " parameters"));
    }
    const autograd::Variable& p = *params[i];
    ParamState& st = loaded[p.node().get()];
    if (parts[1] == "step") {
      if (tensor.dtype() != DType::kInt64 || tensor.numel() != 1 ||
          tensor.ToInt64Vector()[0] < 1) {
        return bad(key, "must be one int64 >= 1");
      }
      st.step = tensor.ToInt64Vector()[0];
      continue;
    }
    int64_t j = -1;
    if (!absl::SimpleAtoi(parts[1], &j) || j < 0 || j >= NumBuffers()) {
      return bad(key, absl::StrCat("this optimizer keeps ", NumBuffers(),
                                   " buffers per parameter"));
    }
    if (tensor.dtype() != DType::kFloat32 || tensor.shape() != p.shape()) {
      return bad(key, absl::StrCat("is ", DTypeName(tensor.dtype()), " ",
                                   tensor.shape().ToString(),
                                   "; the parameter is float32 ",
                                   p.shape().ToString()));
    }
    if (st.buffers.size() <= static_cast<size_t>(j)) st.buffers.resize(j + 1);
    st.buffers[j] = tensor.Contiguous().Clone();
  }
  for (int64_t i = 0; i < static_cast<int64_t>(params.size()); ++i) {
    auto it = loaded.find(params[i]->node().get());
    if (it == loaded.end()) continue;
    const ParamState& st = it->second;
    if (st.step == 0) return bad(absl::StrCat(i, ".step"), "missing");
    if (static_cast<int>(st.buffers.size()) != NumBuffers()) {
      return bad(absl::StrCat(i, ".", st.buffers.size()), "missing");
    }
    for (int j = 0; j < NumBuffers(); ++j) {
      if (!st.buffers[j].defined()) {
        return bad(absl::StrCat(i, ".", j), "missing");
      }
    }
  }
  states_ = std::move(loaded);
  return absl::OkStatus();
}

}  // namespace dive::optim
