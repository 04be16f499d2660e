#include "models/densenet/densenet.h"

#include <initializer_list>
#include <vector>

#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "models/init.h"
#include "nn/activation.h"
#include "nn/batch_norm.h"
#include "nn/bf16_activations.h"
#include "nn/conv2d.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/pool.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

using ModulePtr = std::shared_ptr<nn::Module>;

}  // namespace

std::shared_ptr<nn::Sequential> ConvBlock(int64_t input_channels,
                                          int64_t num_channels) {
  return std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
      std::make_shared<nn::BatchNorm2d>(input_channels),
      std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Conv2d>(input_channels, num_channels, 3,
                                   /*stride=*/1, /*padding=*/1)});
}

// ---- DenseBlock -----------------------------------------------------------------

DenseBlock::DenseBlock(int64_t num_convs, int64_t input_channels,
                       int64_t num_channels)
    : num_convs_(num_convs),
      input_channels_(input_channels),
      num_channels_(num_channels) {
  net_ = RegisterModule("net", std::make_shared<nn::Sequential>());
  for (int64_t i = 0; i < num_convs; ++i) {
    net_->Add(ConvBlock(num_channels * i + input_channels, num_channels));
  }
}

autograd::Variable DenseBlock::Forward(const autograd::Variable& x) {
  // Stored in bf16 in bf16 training where chosen: each concatenation is the
  // next batch norm's input (nn/bf16_activations.h).
  const DType dtype = nn::AutocastStoresBf16(is_training())
                          ? DType::kBfloat16
                          : DType::kFloat32;
  autograd::Variable y = x;
  for (const auto& [name, blk] : net_->children()) {
    // Concatenate the input and output of each block on the channels.
    y = autograd::Concat({y, (*blk)(y)}, /*axis=*/1, dtype);
  }
  return y;
}

std::string DenseBlock::Describe() const {
  return absl::StrCat("DenseBlock(", num_convs_, ", ", input_channels_, ", ",
                      num_channels_, ")");
}

int64_t DenseBlock::out_channels() const {
  return input_channels_ + num_convs_ * num_channels_;
}

// ---- DenseNet -------------------------------------------------------------------

std::shared_ptr<nn::Sequential> TransitionBlock(int64_t input_channels,
                                                int64_t num_channels) {
  return std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
      std::make_shared<nn::BatchNorm2d>(input_channels),
      std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Conv2d>(input_channels, num_channels, 1),
      std::make_shared<nn::AvgPool2d>(2, /*stride=*/2)});
}

std::shared_ptr<nn::Sequential> DenseNet() {
  auto net = std::make_shared<nn::Sequential>();
  net->Add(std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
      std::make_shared<nn::Conv2d>(1, 64, 7, /*stride=*/2, /*padding=*/3),
      std::make_shared<nn::BatchNorm2d>(64), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(3, /*stride=*/2, /*padding=*/1)}));
  // `num_channels`: the current number of channels.
  int64_t num_channels = 64;
  const int64_t growth_rate = 32;
  const std::vector<int64_t> num_convs_in_dense_blocks = {4, 4, 4, 4};
  for (size_t i = 0; i < num_convs_in_dense_blocks.size(); ++i) {
    const int64_t num_convs = num_convs_in_dense_blocks[i];
    net->Add(std::make_shared<DenseBlock>(num_convs, num_channels,
                                          growth_rate));
    // The number of output channels of the dense block just added.
    num_channels += num_convs * growth_rate;
    // A transition block halving the channels goes between dense blocks.
    if (i != num_convs_in_dense_blocks.size() - 1) {
      net->Add(TransitionBlock(num_channels, num_channels / 2));
      num_channels = num_channels / 2;
    }
  }
  net->Add(std::make_shared<nn::BatchNorm2d>(num_channels));
  net->Add(std::make_shared<nn::ReLU>());
  net->Add(std::make_shared<nn::AdaptiveAvgPool2d>(1, 1));
  net->Add(std::make_shared<nn::Flatten>());
  net->Add(std::make_shared<nn::Linear>(num_channels, 10));
  XavierInitWeights(*net);
  return net;
}

ModelSpec DenseNetSpec() {
  ModelSpec spec;
  spec.name = "densenet";
  spec.quick_input_size = 64;
  spec.channels_last_training = true;
  spec.channels_last_inference = true;
  spec.description = "DenseNet (d2l 8.7), growth rate 32, 4 dense blocks, 96x96";
  spec.recipe = {.lr = 0.1f, .batch_size = 256, .epochs = 10,
                 .input_size = 96};
  SetSizeCheckedMake(spec, "DenseNet", kDenseNetMinInputSize, 512,
                     [](int64_t) { return DenseNet(); });
  return spec;
}

}  // namespace dive::models
