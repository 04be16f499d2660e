#include "models/resnet/resnet.h"

#include <initializer_list>

#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "glog/logging.h"
#include "models/init.h"
#include "nn/activation.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/pool.h"

namespace dive::models {
namespace {

using ModulePtr = std::shared_ptr<nn::Module>;

}  // namespace

// ---- Residual -------------------------------------------------------------------

Residual::Residual(int64_t input_channels, int64_t num_channels,
                   bool use_1x1conv, int64_t strides)
    : input_channels_(input_channels),
      num_channels_(num_channels),
      strides_(strides) {
  conv1_ = RegisterModule(
      "conv1", std::make_shared<nn::Conv2d>(input_channels, num_channels, 3,
                                            strides, /*padding=*/1));
  conv2_ = RegisterModule(
      "conv2", std::make_shared<nn::Conv2d>(num_channels, num_channels, 3,
                                            /*stride=*/1, /*padding=*/1));
  if (use_1x1conv) {
    conv3_ = RegisterModule(
        "conv3", std::make_shared<nn::Conv2d>(input_channels, num_channels, 1,
                                              strides));
  }
  bn1_ = RegisterModule("bn1", std::make_shared<nn::BatchNorm2d>(num_channels));
  bn2_ = RegisterModule("bn2", std::make_shared<nn::BatchNorm2d>(num_channels));
}

autograd::Variable Residual::Forward(const autograd::Variable& x) {
  if (conv2_->FoldsBatchNorm()) {  // fused, in evaluation mode
    std::vector<nn::ChainedConv> chain;
    AppendStages(0, &chain);
    if (autograd::Variable y = nn::TryConvChain(chain, x); y.defined()) {
      return y;
    }
    const autograd::Variable y = (*conv1_)(x);  // relu(bn1(conv1(x)))
    const autograd::Variable shortcut = conv3_ != nullptr ? (*conv3_)(x) : x;
    // relu(bn2(conv2(y)) + shortcut)
    return conv2_->CallWithResidual(y, shortcut);
  }
  autograd::Variable y = nn::CallThenRelu(*bn1_, (*conv1_)(x));
  y = (*bn2_)((*conv2_)(y));
  const autograd::Variable shortcut = conv3_ != nullptr ? (*conv3_)(x) : x;
  CHECK(y.shape() == shortcut.shape())
      << Describe() << ": the body gives " << y.shape()
      << " but the shortcut " << shortcut.shape() << " (input " << x.shape()
      << "); a change of channels or stride needs use_1x1conv";
  return Relu(y + shortcut);
}

void Residual::Fuse() {
  conv1_->FuseWith(bn1_, /*relu=*/true);
  bn1_->FuseRelu(true);
  conv2_->FuseWith(bn2_, /*relu=*/true);
  // In evaluation, with bn1 folded, conv1's output goes straight to conv2;
  // in training, bn1's (after its ReLU).
  conv1_->set_feeds_convolution(true);
  bn1_->set_feeds_convolution(true);
}

bool Residual::AppendToConvChain(std::vector<nn::ChainedConv>* chain) const {
  if (!conv2_->FoldsBatchNorm() || has_forward_hooks()) return false;
  AppendStages(static_cast<int>(chain->size()), chain);
  return true;
}

void Residual::AppendStages(int x, std::vector<nn::ChainedConv>* chain) const {
  chain->push_back({conv1_.get(), x, Conv2dStage::kNone});
  if (conv3_ != nullptr)
    chain->push_back({conv3_.get(), x, Conv2dStage::kNone});
  const int y = x + 1, shortcut = conv3_ != nullptr ? x + 2 : x;
  chain->push_back({conv2_.get(), y, shortcut});
}

std::string Residual::Describe() const {
  return absl::StrCat("Residual(", input_channels_, ", ", num_channels_,
                      ", use_1x1conv=", conv3_ != nullptr ? "true" : "false",
                      ", strides=", strides_, ")");
}

// ---- ResNet-18 ------------------------------------------------------------------

std::vector<ModulePtr> ResnetBlock(int64_t input_channels,
                                   int64_t num_channels, int64_t num_residuals,
                                   bool first_block) {
  std::vector<ModulePtr> blk;
  for (int64_t i = 0; i < num_residuals; ++i) {
    if (i == 0 && !first_block) {
      blk.push_back(std::make_shared<Residual>(
          input_channels, num_channels, /*use_1x1conv=*/true, /*strides=*/2));
    } else {
      blk.push_back(std::make_shared<Residual>(num_channels, num_channels));
    }
  }
  return blk;
}

std::shared_ptr<nn::Sequential> ResNet18() {
  auto b1 = std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
      std::make_shared<nn::Conv2d>(1, 64, 7, /*stride=*/2, /*padding=*/3),
      std::make_shared<nn::BatchNorm2d>(64), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(3, /*stride=*/2, /*padding=*/1)});
  auto b2 = std::make_shared<nn::Sequential>(
      ResnetBlock(64, 64, 2, /*first_block=*/true));
  auto b3 = std::make_shared<nn::Sequential>(ResnetBlock(64, 128, 2));
  auto b4 = std::make_shared<nn::Sequential>(ResnetBlock(128, 256, 2));
  auto b5 = std::make_shared<nn::Sequential>(ResnetBlock(256, 512, 2));
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
      b1, b2, b3, b4, b5, std::make_shared<nn::AdaptiveAvgPool2d>(1, 1),
      std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(512, 10)});
  XavierInitWeights(*net);
  return net;
}

ModelSpec ResNetSpec() {
  ModelSpec spec;
  spec.name = "resnet";
  spec.quick_input_size = 64;
  spec.channels_last_training = true;
  spec.description = "ResNet-18 (d2l 8.6) with batch normalization, 96x96";
  spec.recipe = {.lr = 0.05f, .batch_size = 256, .epochs = 10,
                 .input_size = 96};
  SetSizeCheckedMake(spec, "ResNet-18", kResNetMinInputSize, 512,
                     [](int64_t) { return ResNet18(); });
  return spec;
}

}  // namespace dive::models
