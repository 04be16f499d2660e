#include "models/lenet/lenet.h"

#include <initializer_list>

#include "glog/logging.h"
#include "models/init.h"
#include "nn/activation.h"
#include "nn/conv2d.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/pool.h"

namespace dive::models {

std::shared_ptr<nn::Sequential> LeNet(int64_t input_size) {
  const absl::Status size_ok = CheckInputSize(
      "LeNet", input_size, kLeNetMinInputSize, kLeNetMaxInputSize);
  CHECK(size_ok.ok()) << size_ok;
  // 28 -> conv(5, pad 2) 28 -> pool 14 -> conv(5) 10 -> pool 5.
  const int64_t k = (input_size / 2 - 4) / 2;
  auto net = std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Module>>{
          std::make_shared<nn::Conv2d>(1, 6, 5, /*stride=*/1, /*padding=*/2),
          std::make_shared<nn::Sigmoid>(),
          std::make_shared<nn::AvgPool2d>(2, 2),
          std::make_shared<nn::Conv2d>(6, 16, 5),
          std::make_shared<nn::Sigmoid>(),
          std::make_shared<nn::AvgPool2d>(2, 2),
          std::make_shared<nn::Flatten>(),
          std::make_shared<nn::Linear>(16 * k * k, 120),
          std::make_shared<nn::Sigmoid>(),
          std::make_shared<nn::Linear>(120, 84),
          std::make_shared<nn::Sigmoid>(),
          std::make_shared<nn::Linear>(84, 10)});
  XavierInitWeights(*net);
  return net;
}

ModelSpec LeNetSpec() {
  ModelSpec spec;
  spec.name = "lenet";
  spec.description = "LeNet-5 (sigmoid, average pooling)";
  spec.recipe = {.lr = 0.9f, .batch_size = 256, .epochs = 10, .input_size = 28};
  SetSizeCheckedMake(spec, "LeNet", kLeNetMinInputSize,
                     kLeNetMaxInputSize, LeNet);
  return spec;
}

}  // namespace dive::models
