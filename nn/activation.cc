#include "nn/activation.h"

#include "absl/strings/str_cat.h"
#include "autograd/functions.h"

namespace dive::nn {

Variable ReLU::Forward(const Variable& x) { return dive::Relu(x); }

Variable Sigmoid::Forward(const Variable& x) { return dive::Sigmoid(x); }

Variable Tanh::Forward(const Variable& x) { return dive::Tanh(x); }

Variable Softmax::Forward(const Variable& x) {
  return dive::Softmax(x, axis_);
}

std::string Softmax::Describe() const {
  return absl::StrCat("Softmax(axis=", axis_, ")");
}

}  // namespace dive::nn
