#include "nn/dropout.h"

#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "glog/logging.h"
#include "tensor/random.h"

namespace dive::nn {

Dropout::Dropout(float p) : p_(p) {
  CHECK(p >= 0.0f && p < 1.0f)
      << "Dropout: probability p=" << p << " is outside [0, 1)";
}

autograd::Variable Dropout::Forward(const autograd::Variable& x) {
  if (!is_training() || p_ == 0.0f) return x;
  return dive::autograd::Dropout(x, p_, DefaultGenerator());
}

std::string Dropout::Describe() const {
  return absl::StrCat("Dropout(p=", p_, ")");
}

}  // namespace dive::nn
