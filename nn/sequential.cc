#include "nn/sequential.h"

#include "glog/logging.h"
#include "nn/activation.h"
#include "nn/batch_norm.h"
#include "nn/conv2d.h"

namespace dive::nn {

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (const std::shared_ptr<Module>& module : modules) Add(module);
}

Sequential::Sequential(const std::vector<std::shared_ptr<Module>>& modules) {
  for (const std::shared_ptr<Module>& module : modules) Add(module);
}

autograd::Variable Sequential::Forward(const autograd::Variable& x) {
  autograd::Variable y = x;
  const bool skip = !absorbed_.empty() && !is_training();
  for (size_t i = 0; i < children().size(); ++i) {
    if (skip && absorbed_[i]) continue;
    y = (*children()[i].second)(y);
  }
  return y;
}

void Sequential::FuseForEval() {
  const size_t n = children().size();
  absorbed_.assign(n, false);
  for (size_t i = 0; i < n; ++i) {
    const std::shared_ptr<Module>& module = children()[i].second;
    auto conv = std::dynamic_pointer_cast<Conv2d>(module);
    if (conv == nullptr) {
      module->FuseForEval();
      continue;
    }
    size_t next = i + 1;
    std::shared_ptr<BatchNormBase> bn;
    if (next < n) {
      bn = std::dynamic_pointer_cast<BatchNorm2d>(children()[next].second);
      if (bn != nullptr && bn->options().num_features ==
                               conv->options().out_channels) {
        absorbed_[next++] = true;
      } else {
        bn = nullptr;
      }
    }
    const bool relu =
        next < n && dynamic_cast<const ReLU*>(children()[next].second.get());
    if (relu) absorbed_[next++] = true;
    conv->FuseInEval(std::move(bn), relu);
    i = next - 1;
  }
}

const std::shared_ptr<Module>& Sequential::at(size_t index) const {
  CHECK_LT(index, size()) << "Sequential::at(" << index << ") of a Sequential "
                          << "of " << size() << " modules";
  return children()[index].second;
}

}  // namespace dive::nn
