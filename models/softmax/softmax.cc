#include "models/softmax/softmax.h"

#include "nn/flatten.h"
#include "nn/init.h"
#include "nn/linear.h"

namespace dive::models {

std::shared_ptr<nn::Sequential> SoftmaxRegression(int64_t input_size) {
  auto linear = std::make_shared<nn::Linear>(input_size * input_size, 10);
  for (auto& [name, p] : linear->NamedParameters()) {
    Tensor t = p.data();
    if (name == "weight") nn::NormalInit(t, 0.0f, 0.01f);
    else nn::ZerosInit(t);
  }
  return std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Module>>{
          std::make_shared<nn::Flatten>(), linear});
}

ModelSpec SoftmaxSpec() {
  ModelSpec spec;
  spec.name = "softmax";
  spec.description = "softmax regression 784-10";
  spec.recipe = {.lr = 0.1f, .batch_size = 256, .epochs = 10, .input_size = 28};
  spec.make = [](int64_t size)
      -> absl::StatusOr<std::shared_ptr<nn::Module>> {
    if (absl::Status s = CheckInputSize("softmax regression", size, 1, 512);
        !s.ok()) {
      return s;
    }
    return SoftmaxRegression(size);
  };
  return spec;
}

}  // namespace dive::models
