#include "nn/activation.h"

#include "absl/strings/str_cat.h"
#include "autograd/functions.h"

namespace dive::nn {

autograd::Variable ReLU::Forward(const autograd::Variable& x) {
  return dive::autograd::Relu(x);
}

autograd::Variable Sigmoid::Forward(const autograd::Variable& x) {
  return dive::autograd::Sigmoid(x);
}

autograd::Variable Tanh::Forward(const autograd::Variable& x) {
  return dive::autograd::Tanh(x);
}

autograd::Variable Softmax::Forward(const autograd::Variable& x) {
  return dive::autograd::Softmax(x, axis_);
}

std::string Softmax::Describe() const {
  return absl::StrCat("Softmax(axis=", axis_, ")");
}

}  // namespace dive::nn
