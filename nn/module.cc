#include "nn/module.h"

#include <algorithm>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "autograd/functions.h"
#include "glog/logging.h"

namespace dive::nn {
namespace {

std::string JoinKeys(const std::vector<std::string>& keys) {
  return absl::StrCat("[", absl::StrJoin(keys, ", "), "]");
}

}  // namespace

autograd::Variable Module::operator()(const autograd::Variable& x) {
  if (forward_pre_hooks_.empty() && forward_hooks_.empty()) return Forward(x);
  autograd::Variable input = x;
  forward_pre_hooks_.ForEach([&](const ForwardPreHook& hook) {
    if (autograd::Variable replaced = hook(*this, input); replaced.defined()) {
      input = std::move(replaced);
    }
  });
  autograd::Variable y = Forward(input);
  forward_hooks_.ForEach([&](const ForwardHook& hook) {
    if (autograd::Variable replaced = hook(*this, input, y);
        replaced.defined()) {
      y = std::move(replaced);
    }
  });
  return y;
}

void Module::Fuse() {
  for (const auto& [name, child] : children_) child->Fuse();
}

autograd::Variable CallThenRelu(Module& module, const autograd::Variable& x) {
  autograd::Variable y = module(x);
  return module.AppliesRelu() ? y : autograd::Relu(y);
}

autograd::HookHandle Module::RegisterForwardPreHook(ForwardPreHook hook) {
  return forward_pre_hooks_.Add(std::move(hook));
}

autograd::HookHandle Module::RegisterForwardHook(ForwardHook hook) {
  return forward_hooks_.Add(std::move(hook));
}

autograd::HookHandle Module::RegisterForwardHooksOnAll(ForwardPreHook pre_hook,
                                                       ForwardHook hook) {
  std::vector<autograd::HookHandle> handles;
  for (const auto& [name, module] : NamedModules()) {
    if (pre_hook) handles.push_back(module->RegisterForwardPreHook(pre_hook));
    if (hook) handles.push_back(module->RegisterForwardHook(hook));
  }
  return autograd::HookHandle([handles = std::move(handles)]() mutable {
    for (autograd::HookHandle& handle : handles) handle.Remove();
  });
}

// ---- Registration -----------------------------------------------------------

void Module::CheckNewName(const char* what, const std::string& name) const {
  CHECK(!name.empty()) << what << ": empty name";
  CHECK(name.find('.') == std::string::npos)
      << what << ": name '" << name << "' must not contain '.'";
  auto taken = [&name](const auto& entries) {
    return std::any_of(entries.begin(), entries.end(),
                       [&name](const auto& e) { return e.first == name; });
  };
  CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_))
      << what << ": name '" << name << "' is already registered";
}

autograd::Variable Module::RegisterParameter(const std::string& name,
                                             Tensor init) {
  CheckNewName("RegisterParameter", name);
  CHECK(init.defined()) << "RegisterParameter: '" << name << "' is undefined";
  CHECK(init.dtype() == DType::kFloat32)
      << "RegisterParameter: '" << name << "' must be float32, got "
      << DTypeName(init.dtype());
  autograd::Variable param(std::move(init), /*requires_grad=*/true);
  parameters_.emplace_back(name, param);
  return param;
}

Tensor Module::RegisterBuffer(const std::string& name, Tensor init) {
  CheckNewName("RegisterBuffer", name);
  CHECK(init.defined()) << "RegisterBuffer: '" << name << "' is undefined";
  buffers_.emplace_back(name, init);
  return init;
}

void Module::RegisterChild(const std::string& name,
                           std::shared_ptr<Module> module) {
  CheckNewName("RegisterModule", name);
  CHECK(module != nullptr) << "RegisterModule: '" << name << "' is null";
  CHECK(module.get() != this) << "RegisterModule: '" << name
                              << "' registers a module in itself";
  children_.emplace_back(name, std::move(module));
}

// ---- Introspection ----------------------------------------------------------

std::vector<std::pair<std::string, Module*>> Module::NamedModules() const {
  std::vector<std::pair<std::string, Module*>> out;
  std::unordered_set<const Module*> seen;
  // Iterative pre-order walk; children are pushed in reverse so they come
  // out in registration order.
  std::vector<std::pair<std::string, Module*>> stack{
      {"", const_cast<Module*>(this)}};
  while (!stack.empty()) {
    auto [name, module] = stack.back();
    stack.pop_back();
    if (!seen.insert(module).second) continue;
    out.emplace_back(name, module);
    const auto& children = module->children_;
    for (auto it = children.rbegin(); it != children.rend(); ++it) {
      stack.emplace_back(name.empty() ? it->first : name + "." + it->first,
                         it->second.get());
    }
  }
  return out;
}

std::vector<std::pair<std::string, autograd::Variable>>
Module::NamedParameters() const {
  std::vector<std::pair<std::string, autograd::Variable>> out;
  for (const auto& [prefix, module] : NamedModules()) {
    for (const auto& [name, param] : module->parameters_) {
      out.emplace_back(prefix.empty() ? name : prefix + "." + name, param);
    }
  }
  return out;
}

std::vector<autograd::Variable> Module::Parameters() const {
  std::vector<autograd::Variable> out;
  for (auto& [name, param] : NamedParameters()) out.push_back(param);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::NamedBuffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [prefix, module] : NamedModules()) {
    for (const auto& [name, buffer] : module->buffers_) {
      out.emplace_back(prefix.empty() ? name : prefix + "." + name, buffer);
    }
  }
  return out;
}

std::map<std::string, Tensor> Module::StateDict() const {
  std::map<std::string, Tensor> state;
  for (const auto& [name, param] : NamedParameters()) {
    state.emplace(name, param.data());
  }
  for (const auto& [name, buffer] : NamedBuffers()) state.emplace(name, buffer);
  return state;
}

absl::Status Module::LoadStateDict(const std::map<std::string, Tensor>& state) {
  const std::map<std::string, Tensor> own = StateDict();
  std::vector<std::string> missing, unexpected, bad_shape, bad_dtype;
  for (const auto& [name, tensor] : own) {
    auto it = state.find(name);
    if (it == state.end()) {
      missing.push_back(name);
      continue;
    }
    const Tensor& src = it->second;
    if (!src.defined()) {
      bad_shape.push_back(absl::StrCat(name, " (expected ",
                                       tensor.shape().ToString(),
                                       ", got an undefined tensor)"));
      continue;
    }
    if (src.shape() != tensor.shape()) {
      bad_shape.push_back(absl::StrCat(name, " (expected ",
                                       tensor.shape().ToString(), ", got ",
                                       src.shape().ToString(), ")"));
    }
    if (src.dtype() != tensor.dtype()) {
      bad_dtype.push_back(absl::StrCat(name, " (expected ",
                                       DTypeName(tensor.dtype()), ", got ",
                                       DTypeName(src.dtype()), ")"));
    }
  }
  for (const auto& [name, tensor] : state) {
    if (own.count(name) == 0) unexpected.push_back(name);
  }
  std::vector<std::string> problems;
  if (!missing.empty()) {
    problems.push_back(absl::StrCat("missing keys ", JoinKeys(missing)));
  }
  if (!unexpected.empty()) {
    problems.push_back(absl::StrCat("unexpected keys ", JoinKeys(unexpected)));
  }
  if (!bad_shape.empty()) {
    problems.push_back(absl::StrCat("shape mismatches ", JoinKeys(bad_shape)));
  }
  if (!bad_dtype.empty()) {
    problems.push_back(absl::StrCat("dtype mismatches ", JoinKeys(bad_dtype)));
  }
  if (!problems.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("LoadStateDict: ", absl::StrJoin(problems, "; ")));
  }
  // Copy into the existing storage: every copy of a parameter's Variable
  // (e.g. the one an optimizer holds) sees the new values.
  for (const auto& [name, tensor] : own) {
    Tensor dst = tensor;
    dst.CopyFrom(state.at(name));
  }
  Refreeze();
  return absl::OkStatus();
}

int64_t Module::NumParameters() const {
  int64_t n = 0;
  for (const autograd::Variable& param : Parameters()) n += param.numel();
  return n;
}

// ---- Mode and gradients -----------------------------------------------------

void Module::Train(bool on) {
  if (on) Thaw();
  for (auto& [name, module] : NamedModules()) module->training_ = on;
}

void Module::Thaw() {
  for (auto& [name, module] : NamedModules()) {
    if (module->frozen_) {
      module->frozen_ = false;
      module->OnFreeze(false);
    }
  }
}

void Module::Freeze() {
  Train(false);
  for (auto& [name, module] : NamedModules()) {
    module->frozen_ = true;
    module->OnFreeze(true);
  }
}

void Module::Refreeze() {
  for (auto& [name, module] : NamedModules()) {
    if (module->frozen_) module->OnFreeze(true);
  }
}

void Module::ZeroGrad() {
  for (autograd::Variable& param : Parameters()) param.ZeroGrad();
}

// ---- Summary ------------------------------------------------------------------

autograd::Variable Module::DryRun(const Shape& input_shape) {
  const std::vector<std::pair<std::string, Module*>> modules = NamedModules();
  std::vector<bool> modes;
  for (const auto& [name, module] : modules) modes.push_back(module->training_);
  autograd::Variable output;
  {
    autograd::NoGradGuard no_grad;
    Eval();
    output = (*this)(autograd::Variable(Tensor::Zeros(input_shape)));
  }
  for (size_t i = 0; i < modules.size(); ++i) {
    modules[i].second->training_ = modes[i];
  }
  return output;
}

std::string Module::Summary(const Shape& input_shape) {
  std::unordered_map<const Module*, std::string> names;
  for (const auto& [name, module] : NamedModules()) names.emplace(module, name);

  // One record per call of a module's operator(), opened by the pre-hook
  // (after any earlier pre-hooks) and given its output by the hook (after
  // any earlier hooks).
  struct CallRecord {
    int depth;
    const Module* module;
    Shape output_shape;
  };
  std::vector<CallRecord> calls;
  std::vector<size_t> open;  // the calls under way, innermost last
  autograd::HookHandle recorder = RegisterForwardHooksOnAll(
      [&calls, &open](Module& module, const autograd::Variable&) {
        calls.push_back({static_cast<int>(open.size()), &module, Shape()});
        open.push_back(calls.size() - 1);
        return autograd::Variable();
      },
      [&calls, &open](Module&, const autograd::Variable&,
                      const autograd::Variable& output) {
        calls[open.back()].output_shape = output.shape();
        open.pop_back();
        return autograd::Variable();
      });
  DryRun(input_shape);
  recorder.Remove();

  // Columns: module (indented name and description), output shape, params.
  std::vector<std::vector<std::string>> rows{{"Module", "Output shape",
                                              "Params"}};
  for (const CallRecord& call : calls) {
    const std::string& name = names.at(call.module);
    rows.push_back({absl::StrCat(std::string(2 * call.depth, ' '), name,
                                 name.empty() ? "" : " ",
                                 call.module->Describe()),
                    call.output_shape.ToString(),
                    absl::StrCat(call.module->NumParameters())});
  }
  size_t width0 = 0, width1 = 0;
  for (const auto& row : rows) {
    width0 = std::max(width0, row[0].size());
    width1 = std::max(width1, row[1].size());
  }
  std::string out;
  for (const auto& row : rows) {
    absl::StrAppend(&out, row[0], std::string(width0 + 2 - row[0].size(), ' '),
                    row[1], std::string(width1 + 2 - row[1].size(), ' '),
                    row[2], "\n");
  }
  absl::StrAppend(&out, "Total parameters: ", NumParameters(), "\n");
  return out;
}

}  // namespace dive::nn
