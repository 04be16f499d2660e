#include "nn/conv2d.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "autograd/trace.h"
#include "glog/logging.h"
#include "nn/bf16_activations.h"
#include "nn/init.h"
#include "nn/pool.h"
#include "tensor/gemm.h"

namespace dive::nn {
namespace {

// "5" for a square pair, "5x3" otherwise.
std::string Pair(int64_t h, int64_t w) {
  return h == w ? absl::StrCat(h) : absl::StrCat(h, "x", w);
}

}  // namespace

Conv2d::Conv2d(const Conv2dOptions& options) : options_(options) {
  const Conv2dOptions& o = options_;
  CHECK(o.in_channels > 0 && o.out_channels > 0 && o.kernel_h > 0 &&
        o.kernel_w > 0 && o.stride_h > 0 && o.stride_w > 0 && o.pad_h >= 0 &&
        o.pad_w >= 0)
      << "Conv2d: invalid options " << Describe()
      << " (channels, kernel and stride must be positive, padding >= 0)";
  params_ = Conv2dParams{o.stride_h, o.stride_w, o.pad_h, o.pad_w};
  weight_ = RegisterParameter(
      "weight",
      Tensor::Empty({o.out_channels, o.in_channels, o.kernel_h, o.kernel_w}));
  KaimingUniform(weight_.data(), std::sqrt(5.0f));
  if (o.bias) {
    const int64_t fan_in = o.in_channels * o.kernel_h * o.kernel_w;
    const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
    bias_ = RegisterParameter("bias", Tensor::Empty({o.out_channels}));
    UniformInit(bias_.data(), -bound, bound);
  }
}

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
               int64_t stride, int64_t padding, bool bias)
    : Conv2d(Conv2dOptions(in_channels, out_channels, kernel_size)
                 .set_stride(stride)
                 .set_padding(padding)
                 .set_bias(bias)) {}

autograd::Variable Conv2d::Forward(const autograd::Variable& x) {
  const Conv2dOptions& o = options_;
  CHECK(x.rank() == 4 && x.dim(1) == o.in_channels)
      << Describe() << ": expected input [N, " << o.in_channels
      << ", H, W], got " << x.shape();
  CHECK(x.dim(2) + 2 * o.pad_h >= o.kernel_h &&
        x.dim(3) + 2 * o.pad_w >= o.kernel_w)
      << Describe() << ": input " << x.shape()
      << " is smaller than the kernel (after padding)";
  const auto [weight, bias] = EffectiveWeightAndBias();
  return dive::autograd::Conv2d(x, weight, bias, params_, residual_,
                                AppliesRelu(), OutputDType());
}

DType Conv2d::OutputDType() const {
  // Under bf16 matmuls, stored in bf16 into another convolution, or in
  // evaluation through max pooling into products (both exact), or into its
  // batch norm or another activation that bf16 autocast training stores in
  // bf16 (nn/bf16_activations.h).
  const bool bf16 = GetMatmulPrecision() == MatmulPrecision::kBfloat16;
  const bool into_conv =
      feeds_conv_ && (fused_bn_ == nullptr || FoldsBatchNorm()) && bf16;
  const bool through_pool = feeds_pool_products_ && !is_training() && bf16;
  const bool into_autocast = (fused_bn_ != nullptr || feeds_autocast_) &&
                             AutocastStoresBf16(is_training());
  return into_conv || through_pool || into_autocast ? DType::kBfloat16
                                                    : DType::kFloat32;
}

Conv2dStage Conv2d::ChainStage() const {
  const auto [weight, bias] = EffectiveWeightAndBias();
  return Conv2dStage{weight.data(), bias.defined() ? bias.data() : Tensor(),
                     params_, AppliesRelu()};
}

std::pair<autograd::Variable, autograd::Variable>
Conv2d::EffectiveWeightAndBias() const {
  if (is_frozen()) return {frozen_weight_, frozen_bias_};
  return CurrentWeightAndBias();
}

void Conv2d::OnFreeze(bool frozen) {
  frozen_weight_ = frozen_bias_ = autograd::Variable();
  if (!frozen) return;
  const auto [weight, bias] = CurrentWeightAndBias();
  frozen_weight_ = autograd::Variable(weight.data().Frozen());
  if (bias.defined()) frozen_bias_ = autograd::Variable(bias.data().Clone());
}

std::pair<autograd::Variable, autograd::Variable> Conv2d::CurrentWeightAndBias()
    const {
  if (!FoldsBatchNorm()) return {weight_, bias_};
  const BatchNormBase& bn = *fused_bn_;
  const autograd::Variable scale =
      bn.weight() /
      autograd::Sqrt(autograd::Variable(bn.running_var()) + bn.options().eps);
  const autograd::Variable mean(bn.running_mean());
  return {weight_ * autograd::Reshape(scale, {options_.out_channels, 1, 1, 1}),
          (bias_.defined() ? bias_ - mean : -mean) * scale + bn.bias()};
}

void Conv2d::FuseWith(std::shared_ptr<BatchNormBase> bn, bool relu) {
  CHECK(bn == nullptr ||
        (dynamic_cast<const BatchNorm2d*>(bn.get()) != nullptr &&
         bn->options().num_features == options_.out_channels))
      << Describe() << ": cannot fold " << bn->Describe()
      << "; it must be a BatchNorm2d of " << options_.out_channels
      << " features";
  fused_bn_ = std::move(bn);
  fused_relu_ = relu;
  if (is_frozen()) OnFreeze(true);
}

autograd::Variable Conv2d::CallWithResidual(
    const autograd::Variable& x, const autograd::Variable& residual) {
  CHECK(FoldsBatchNorm())
      << Describe() << ": CallWithResidual outside a fused evaluation";
  residual_ = residual;
  autograd::Variable y = (*this)(x);
  residual_ = autograd::Variable();
  return y;
}

std::string Conv2d::Describe() const {
  const Conv2dOptions& o = options_;
  return absl::StrCat("Conv2d(", o.in_channels, ", ", o.out_channels,
                      ", kernel=", o.kernel_h, "x", o.kernel_w,
                      ", stride=", Pair(o.stride_h, o.stride_w),
                      ", padding=", Pair(o.pad_h, o.pad_w),
                      o.bias ? "" : ", bias=false", ")");
}

bool Conv2d::AppendToConvChain(std::vector<ChainedConv>* chain) const {
  if (is_training() || has_forward_hooks()) return false;
  chain->push_back({this, static_cast<int>(chain->size()), Conv2dStage::kNone});
  return true;
}

bool ChainsAllowed() {
  return !autograd::GradEnabled() && !autograd::Tracing();
}

autograd::Variable TryConvChain(const std::vector<ChainedConv>& chain,
                                const autograd::Variable& x) {
  // A wrong input is left to the first module's own call, which names the
  // layer in its error.
  if (chain.size() < 2 || !ChainsAllowed() || x.rank() != 4 ||
      (chain.front().conv != nullptr &&
       x.dim(1) != chain.front().conv->options().in_channels)) {
    return autograd::Variable();
  }
  for (const ChainedConv& link : chain) {
    const Module* m = link.conv != nullptr
                          ? static_cast<const Module*>(link.conv)
                          : static_cast<const Module*>(link.pool);
    if (m->is_training() || m->has_forward_hooks()) return autograd::Variable();
  }
  // The rule needs only the shapes: the weights are folded (ChainStage) once
  // the chain is known to run.
  std::vector<Conv2dStage> stages;
  for (const ChainedConv& link : chain) {
    Conv2dStage& stage = stages.emplace_back();
    stage.input = link.input;
    stage.residual = link.residual;
    if (link.conv != nullptr) {
      stage.weight = link.conv->weight().data();
      stage.params = link.conv->params();
    } else {
      stage.max_pool = link.pool->params();
    }
  }
  if (!Conv2dChainUsesOneDnn(x.shape(), stages)) return autograd::Variable();
  // Each output in the dtype its module's own call stores it in: a
  // convolution's OutputDType, a pooling's input dtype (its maxima, exact),
  // and float32 for a pooling's as the chain's result, as MaxPool2d gives it.
  std::vector<DType> dtypes = {x.data().dtype()};
  for (size_t i = 0; i < chain.size(); ++i) {
    Conv2dStage& stage = stages[i];
    if (chain[i].conv != nullptr) {
      const Conv2dStage folded = chain[i].conv->ChainStage();
      stage.weight = folded.weight;
      stage.bias = folded.bias;
      stage.relu = folded.relu;
      stage.dtype = chain[i].conv->OutputDType();
    } else {
      stage.dtype = dtypes[stage.input];
    }
    dtypes.push_back(*stage.dtype);
  }
  const DType dtype =
      chain.back().conv != nullptr ? dtypes.back() : DType::kFloat32;
  return autograd::Variable(Conv2dChainForward(x.data(), stages, dtype));
}

std::vector<ChainedConv> ConvsInTurn(const std::vector<const Conv2d*>& convs) {
  std::vector<ChainedConv> chain;
  for (const Conv2d* conv : convs) {
    chain.push_back({conv, static_cast<int>(chain.size()), Conv2dStage::kNone});
  }
  return chain;
}

}  // namespace dive::nn

