#include "models/softmax/softmax.h"

#include "models/init.h"
#include "nn/flatten.h"
#include "nn/linear.h"

namespace dive::models {

std::shared_ptr<nn::Sequential> SoftmaxRegression(int64_t input_size) {
  auto net = std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Module>>{
          std::make_shared<nn::Flatten>(),
          std::make_shared<nn::Linear>(input_size * input_size, 10)});
  NormalInitWeights(*net, /*std=*/0.01f);
  return net;
}

ModelSpec SoftmaxSpec() {
  ModelSpec spec;
  spec.name = "softmax";
  spec.description = "softmax regression 784-10";
  spec.recipe = {.lr = 0.1f, .batch_size = 256, .epochs = 10, .input_size = 28};
  SetSizeCheckedMake(spec, "softmax regression", 1, 512, SoftmaxRegression);
  return spec;
}

}  // namespace dive::models
