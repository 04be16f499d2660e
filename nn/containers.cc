#include "nn/containers.h"

#include <vector>

#include "autograd/functions.h"
#include "glog/logging.h"

namespace dive::nn {

// ---- Concat ---------------------------------------------------------------------

Concat::Concat(std::initializer_list<std::shared_ptr<Module>> branches,
               int axis)
    : axis_(axis) {
  for (const std::shared_ptr<Module>& branch : branches) Add(branch);
}

autograd::Variable Concat::Forward(const autograd::Variable& x) {
  CHECK(!children().empty()) << Describe() << " has no branches";
  std::vector<autograd::Variable> outputs;
  outputs.reserve(children().size());
  for (const auto& [name, branch] : children()) outputs.push_back((*branch)(x));
  // Every output must match the first except along the concatenation axis.
  const Shape& first = outputs[0].shape();
  const int axis = axis_ < 0 ? axis_ + first.rank() : axis_;
  bool compatible = axis >= 0 && axis < first.rank();
  for (const autograd::Variable& y : outputs) {
    if (y.rank() != first.rank()) compatible = false;
    for (int i = 0; compatible && i < y.rank(); ++i) {
      if (i != axis && y.dim(i) != first[i]) compatible = false;
    }
  }
  if (!compatible) {
    std::string shapes;
    for (size_t i = 0; i < outputs.size(); ++i) {
      absl::StrAppend(&shapes, i == 0 ? "" : ", ", children()[i].first, ": ",
                      outputs[i].shape().ToString());
    }
    LOG(FATAL) << Describe() << ": cannot join the branch outputs along axis "
               << axis_ << " (input " << x.shape() << "; " << shapes << ")";
  }
  return dive::autograd::Concat(outputs, axis);
}

std::string Concat::Describe() const {
  return absl::StrCat("Concat(axis=", axis_, ")");
}

// ---- Residual -------------------------------------------------------------------

Residual::Residual(std::shared_ptr<Module> body,
                   std::shared_ptr<Module> shortcut)
    : body_(std::move(body)), shortcut_(std::move(shortcut)) {
  CHECK(body_ != nullptr) << "Residual: the body must not be null";
  RegisterModule("body", body_);
  if (shortcut_ != nullptr) RegisterModule("shortcut", shortcut_);
}

autograd::Variable Residual::Forward(const autograd::Variable& x) {
  const autograd::Variable y = (*body_)(x);
  const autograd::Variable s = shortcut_ != nullptr ? (*shortcut_)(x) : x;
  CHECK(y.shape() == s.shape())
      << "Residual: body output " << y.shape() << " and shortcut output "
      << s.shape() << " differ (input " << x.shape() << ")";
  return y + s;
}

}  // namespace dive::nn
