#include "models/googlenet/googlenet.h"

#include <initializer_list>

#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "models/init.h"
#include "nn/activation.h"
#include "nn/bf16_activations.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

using ModulePtr = std::shared_ptr<nn::Module>;

}  // namespace

// ---- Inception ------------------------------------------------------------------

Inception::Inception(int64_t in_channels, int64_t c1,
                     std::pair<int64_t, int64_t> c2,
                     std::pair<int64_t, int64_t> c3, int64_t c4)
    : in_channels_(in_channels), c1_(c1), c2_(c2), c3_(c3), c4_(c4) {
  // Path 1 is a single 1x1 convolution.
  p1_1_ = RegisterModule("p1_1",
                         std::make_shared<nn::Conv2d>(in_channels, c1, 1));
  // Path 2 is a 1x1 convolution followed by a 3x3 convolution.
  p2_1_ = RegisterModule(
      "p2_1", std::make_shared<nn::Conv2d>(in_channels, c2.first, 1));
  p2_2_ = RegisterModule(
      "p2_2", std::make_shared<nn::Conv2d>(c2.first, c2.second, 3,
                                           /*stride=*/1, /*padding=*/1));
  // Path 3 is a 1x1 convolution followed by a 5x5 convolution.
  p3_1_ = RegisterModule(
      "p3_1", std::make_shared<nn::Conv2d>(in_channels, c3.first, 1));
  p3_2_ = RegisterModule(
      "p3_2", std::make_shared<nn::Conv2d>(c3.first, c3.second, 5,
                                           /*stride=*/1, /*padding=*/2));
  // Path 4 is a 3x3 max pooling followed by a 1x1 convolution.
  p4_1_ = RegisterModule(
      "p4_1", std::make_shared<nn::MaxPool2d>(3, /*stride=*/1, /*padding=*/1));
  p4_2_ = RegisterModule("p4_2",
                         std::make_shared<nn::Conv2d>(in_channels, c4, 1));
}

autograd::Variable Inception::Forward(const autograd::Variable& x) {
  using nn::CallThenRelu;
  const autograd::Variable p1 = CallThenRelu(*p1_1_, x);
  // Paths 2 and 3 as one chain each in evaluation where oneDNN runs it.
  autograd::Variable p2 =
      nn::TryConvChain(nn::ConvsInTurn({p2_1_.get(), p2_2_.get()}), x);
  if (!p2.defined()) p2 = CallThenRelu(*p2_2_, CallThenRelu(*p2_1_, x));
  autograd::Variable p3 =
      nn::TryConvChain(nn::ConvsInTurn({p3_1_.get(), p3_2_.get()}), x);
  if (!p3.defined()) p3 = CallThenRelu(*p3_2_, CallThenRelu(*p3_1_, x));
  const autograd::Variable p4 = CallThenRelu(*p4_2_, (*p4_1_)(x));
  // Concatenate the outputs on the channel dimension: in bf16 in bf16
  // training where chosen (nn/bf16_activations.h), for its consumers read
  // bf16 (convolutions, max pooling, the final average).
  return dive::autograd::Concat({p1, p2, p3, p4}, /*axis=*/1,
                                nn::AutocastStoresBf16(is_training())
                                    ? DType::kBfloat16
                                    : DType::kFloat32);
}

void Inception::Fuse() {
  for (nn::Conv2d* conv : {p1_1_.get(), p2_1_.get(), p2_2_.get(), p3_1_.get(),
                           p3_2_.get(), p4_2_.get()}) {
    conv->FuseWith(/*bn=*/nullptr, /*relu=*/true);
  }
  // The 1x1 reductions of paths 2 and 3 go straight into their convolutions;
  // the last convolution of each path into the output, which bf16 autocast
  // training stores in bf16 (Forward).
  p2_1_->set_feeds_convolution(true);
  p3_1_->set_feeds_convolution(true);
  for (nn::Conv2d* conv :
       {p1_1_.get(), p2_2_.get(), p3_2_.get(), p4_2_.get()}) {
    conv->set_feeds_autocast_bf16(true);
  }
}

std::string Inception::Describe() const {
  return absl::StrCat("Inception(", in_channels_, ", ", c1_, ", (", c2_.first,
                      ", ", c2_.second, "), (", c3_.first, ", ", c3_.second,
                      "), ", c4_, ")");
}

int64_t Inception::out_channels() const {
  return c1_ + c2_.second + c3_.second + c4_;
}

// ---- GoogLeNet ------------------------------------------------------------------

std::shared_ptr<nn::Sequential> GoogLeNet() {
  auto b1 = std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
      std::make_shared<nn::Conv2d>(1, 64, 7, /*stride=*/2, /*padding=*/3),
      std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(3, /*stride=*/2, /*padding=*/1)});
  auto b2 = std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
      std::make_shared<nn::Conv2d>(64, 64, 1),
      std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Conv2d>(64, 192, 3, /*stride=*/1, /*padding=*/1),
      std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(3, /*stride=*/2, /*padding=*/1)});
  auto b3 = std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
      std::make_shared<Inception>(192, 64, std::make_pair(96, 128),
                                  std::make_pair(16, 32), 32),
      std::make_shared<Inception>(256, 128, std::make_pair(128, 192),
                                  std::make_pair(32, 96), 64),
      std::make_shared<nn::MaxPool2d>(3, /*stride=*/2, /*padding=*/1)});
  auto b4 = std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
      std::make_shared<Inception>(480, 192, std::make_pair(96, 208),
                                  std::make_pair(16, 48), 64),
      std::make_shared<Inception>(512, 160, std::make_pair(112, 224),
                                  std::make_pair(24, 64), 64),
      std::make_shared<Inception>(512, 128, std::make_pair(128, 256),
                                  std::make_pair(24, 64), 64),
      std::make_shared<Inception>(512, 112, std::make_pair(144, 288),
                                  std::make_pair(32, 64), 64),
      std::make_shared<Inception>(528, 256, std::make_pair(160, 320),
                                  std::make_pair(32, 128), 128),
      std::make_shared<nn::MaxPool2d>(3, /*stride=*/2, /*padding=*/1)});
  auto b5 = std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
      std::make_shared<Inception>(832, 256, std::make_pair(160, 320),
                                  std::make_pair(32, 128), 128),
      std::make_shared<Inception>(832, 384, std::make_pair(192, 384),
                                  std::make_pair(48, 128), 128),
      std::make_shared<nn::AdaptiveAvgPool2d>(1, 1),
      std::make_shared<nn::Flatten>()});
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
      b1, b2, b3, b4, b5, std::make_shared<nn::Linear>(1024, 10)});
  XavierInitWeights(*net);
  return net;
}

ModelSpec GoogLeNetSpec() {
  ModelSpec spec;
  spec.name = "googlenet";
  spec.quick_input_size = 64;
  spec.channels_last_training = true;
  spec.description = "GoogLeNet (d2l 8.4), 9 Inception blocks, 96x96";
  spec.recipe = {.lr = 0.1f, .batch_size = 128, .epochs = 10,
                 .input_size = 96};
  SetSizeCheckedMake(spec, "GoogLeNet", kGoogLeNetMinInputSize, 512,
                     [](int64_t) { return GoogLeNet(); });
  return spec;
}

}  // namespace dive::models
