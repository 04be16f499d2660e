#include "nn/linear.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "glog/logging.h"
#include "nn/init.h"

namespace dive::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : in_features_(in_features), out_features_(out_features) {
  CHECK(in_features > 0 && out_features > 0)
      << "Linear: in_features and out_features must be positive, got "
      << in_features << " and " << out_features;
  weight_ = RegisterParameter("weight",
                              Tensor::Empty({out_features, in_features}));
  KaimingUniform(weight_.data(), std::sqrt(5.0f));
  if (bias) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(in_features));
    bias_ = RegisterParameter("bias", Tensor::Empty({out_features}));
    UniformInit(bias_.data(), -bound, bound);
  }
}

autograd::Variable Linear::Forward(const autograd::Variable& x) {
  CHECK(x.rank() == 2 && x.dim(1) == in_features_)
      << Describe() << ": expected input [N, " << in_features_ << "], got "
      << x.shape();
  if (is_frozen())
    return dive::autograd::Linear(x, frozen_weight_, frozen_bias_);
  return dive::autograd::Linear(x, weight_, bias_);
}

void Linear::OnFreeze(bool frozen) {
  frozen_weight_ = frozen ? autograd::Variable(weight_.data().Frozen())
                          : autograd::Variable();
  frozen_bias_ = frozen && bias_.defined()
                     ? autograd::Variable(bias_.data().Clone())
                     : autograd::Variable();
}

std::string Linear::Describe() const {
  return absl::StrCat("Linear(", in_features_, ", ", out_features_,
                      bias_.defined() ? "" : ", bias=false", ")");
}

}  // namespace dive::nn
