#include "models/bn_lenet/bn_lenet.h"

#include <initializer_list>

#include "glog/logging.h"
#include "models/init.h"
#include "nn/activation.h"
#include "nn/batch_norm.h"
#include "nn/conv2d.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/pool.h"

namespace dive::models {
namespace {

constexpr char kModel[] = "BatchNorm LeNet";

}  // namespace

std::shared_ptr<nn::Sequential> BnLeNet(int64_t input_size) {
  const absl::Status size_ok = CheckInputSize(
      kModel, input_size, kBnLeNetMinInputSize, kBnLeNetMaxInputSize);
  CHECK(size_ok.ok()) << size_ok;
  // 28 -> conv(5) 24 -> pool 12 -> conv(5) 8 -> pool 4.
  const int64_t k = ((input_size - 4) / 2 - 4) / 2;
  auto net = std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Module>>{
          std::make_shared<nn::Conv2d>(1, 6, 5),
          std::make_shared<nn::BatchNorm2d>(6),
          std::make_shared<nn::Sigmoid>(),
          std::make_shared<nn::AvgPool2d>(2, 2),
          std::make_shared<nn::Conv2d>(6, 16, 5),
          std::make_shared<nn::BatchNorm2d>(16),
          std::make_shared<nn::Sigmoid>(),
          std::make_shared<nn::AvgPool2d>(2, 2),
          std::make_shared<nn::Flatten>(),
          std::make_shared<nn::Linear>(16 * k * k, 120),
          std::make_shared<nn::BatchNorm1d>(120),
          std::make_shared<nn::Sigmoid>(),
          std::make_shared<nn::Linear>(120, 84),
          std::make_shared<nn::BatchNorm1d>(84),
          std::make_shared<nn::Sigmoid>(),
          std::make_shared<nn::Linear>(84, 10)});
  XavierInitWeights(*net);
  return net;
}

ModelSpec BnLeNetSpec() {
  ModelSpec spec;
  spec.name = "bn_lenet";
  spec.description = "LeNet with batch normalization";
  spec.recipe = {.lr = 1.0f, .batch_size = 256, .epochs = 10, .input_size = 28};
  SetSizeCheckedMake(spec, kModel, kBnLeNetMinInputSize,
                     kBnLeNetMaxInputSize, BnLeNet);
  return spec;
}

}  // namespace dive::models
