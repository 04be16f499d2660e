#include "nn/batch_norm.h"

#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "glog/logging.h"
#include "tensor/gemm.h"

namespace dive::nn {

BatchNormBase::BatchNormBase(const char* name, int input_rank,
                             const BatchNormOptions& options)
    : name_(name), input_rank_(input_rank), options_(options) {
  const int64_t c = options.num_features;
  CHECK_GT(c, 0) << name << ": num_features must be positive, got " << c;
  CHECK(options.eps > 0.0f) << name << ": eps must be positive, got "
                            << options.eps;
  CHECK(options.momentum >= 0.0f && options.momentum <= 1.0f)
      << name << ": momentum must be in [0, 1], got " << options.momentum;
  weight_ = RegisterParameter("weight", Tensor::Ones({c}));
  bias_ = RegisterParameter("bias", Tensor::Zeros({c}));
  running_mean_ = RegisterBuffer("running_mean", Tensor::Zeros({c}));
  running_var_ = RegisterBuffer("running_var", Tensor::Ones({c}));
  num_batches_tracked_ =
      RegisterBuffer("num_batches_tracked", Tensor::Zeros({}, DType::kInt64));
}

autograd::Variable BatchNormBase::Forward(const autograd::Variable& x) {
  const int64_t c = options_.num_features;
  CHECK(x.rank() == input_rank_ && x.dim(1) == c)
      << Describe() << ": expected input "
      << (input_rank_ == 2 ? absl::StrCat("[N, ", c, "]")
                           : absl::StrCat("[N, ", c, ", H, W]"))
      << ", got " << x.shape();
  if (is_training()) {
    CHECK_GT(x.numel() / c, 1)
        << Describe() << ": expected more than 1 value per channel when "
        << "training, got input " << x.shape();
    ++num_batches_tracked_.data<int64_t>()[0];
  }
  const bool bf16_out =
      feeds_conv_ && GetMatmulPrecision() == MatmulPrecision::kBfloat16;
  return dive::autograd::BatchNorm(
      x, weight_, bias_, running_mean_, running_var_, is_training(),
      options_.momentum, options_.eps, relu_,
      bf16_out ? DType::kBfloat16 : DType::kFloat32);
}

std::string BatchNormBase::Describe() const {
  return absl::StrCat(name_, "(", options_.num_features,
                      ", eps=", options_.eps, ", momentum=",
                      options_.momentum, ")");
}

int64_t BatchNormBase::num_batches_tracked() const {
  return num_batches_tracked_.data<int64_t>()[0];
}

}  // namespace dive::nn
