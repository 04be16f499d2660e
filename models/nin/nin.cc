#include "models/nin/nin.h"

#include <initializer_list>

#include "models/init.h"
#include "nn/activation.h"
#include "nn/conv2d.h"
#include "nn/dropout.h"
#include "nn/flatten.h"
#include "nn/module.h"
#include "nn/pool.h"

namespace dive::models {
namespace {

using ModulePtr = std::shared_ptr<nn::Module>;

}  // namespace

std::shared_ptr<nn::Sequential> NinBlock(int64_t in_channels,
                                         int64_t out_channels,
                                         int64_t kernel_size, int64_t stride,
                                         int64_t padding) {
  return std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
      std::make_shared<nn::Conv2d>(in_channels, out_channels, kernel_size,
                                   stride, padding),
      std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Conv2d>(out_channels, out_channels, 1),
      std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Conv2d>(out_channels, out_channels, 1),
      std::make_shared<nn::ReLU>()});
}

std::shared_ptr<nn::Sequential> NiN() {
  auto net = std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
      NinBlock(1, 96, /*kernel_size=*/11, /*stride=*/4, /*padding=*/0),
      std::make_shared<nn::MaxPool2d>(3, /*stride=*/2),
      NinBlock(96, 256, /*kernel_size=*/5, /*stride=*/1, /*padding=*/2),
      std::make_shared<nn::MaxPool2d>(3, /*stride=*/2),
      NinBlock(256, 384, /*kernel_size=*/3, /*stride=*/1, /*padding=*/1),
      std::make_shared<nn::MaxPool2d>(3, /*stride=*/2),
      std::make_shared<nn::Dropout>(0.5f),
      // There are 10 label classes.
      NinBlock(384, 10, /*kernel_size=*/3, /*stride=*/1, /*padding=*/1),
      std::make_shared<nn::AdaptiveAvgPool2d>(1, 1),
      // [N, 10, 1, 1] -> [N, 10].
      std::make_shared<nn::Flatten>()});
  XavierInitWeights(*net);
  return net;
}

ModelSpec NinSpec() {
  ModelSpec spec;
  spec.name = "nin";
  spec.quick_input_size = 96;
  spec.channels_last_training = true;
  spec.description = "Network in Network (d2l 8.3), 1x1-conv blocks, 224x224";
  spec.recipe = {.lr = 0.1f, .batch_size = 128, .epochs = 10,
                 .input_size = 224};
  SetSizeCheckedMake(spec, "NiN", kNinMinInputSize, 512,
                     [](int64_t) { return NiN(); });
  return spec;
}

}  // namespace dive::models
