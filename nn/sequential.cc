#include "nn/sequential.h"

#include "glog/logging.h"

namespace dive::nn {

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (const std::shared_ptr<Module>& module : modules) Add(module);
}

Sequential::Sequential(const std::vector<std::shared_ptr<Module>>& modules) {
  for (const std::shared_ptr<Module>& module : modules) Add(module);
}

autograd::Variable Sequential::Forward(const autograd::Variable& x) {
  autograd::Variable y = x;
  for (const auto& [name, module] : children()) y = (*module)(y);
  return y;
}

const std::shared_ptr<Module>& Sequential::at(size_t index) const {
  CHECK_LT(index, size()) << "Sequential::at(" << index << ") of a Sequential "
                          << "of " << size() << " modules";
  return children()[index].second;
}

}  // namespace dive::nn
