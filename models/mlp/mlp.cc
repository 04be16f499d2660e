#include "models/mlp/mlp.h"

#include <initializer_list>

#include "glog/logging.h"
#include "models/init.h"
#include "nn/activation.h"
#include "nn/dropout.h"
#include "nn/flatten.h"
#include "nn/linear.h"

namespace dive::models {
namespace {

// The book's init_weights: N(0, 0.01) weights and zero biases.
constexpr float kInitStd = 0.01f;

constexpr int64_t kMlpMaxInputSize = 512;

}  // namespace

std::shared_ptr<nn::Sequential> Mlp(int64_t input_size) {
  CHECK_GT(input_size, 0) << "Mlp: input_size must be positive";
  auto net = std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Module>>{
          std::make_shared<nn::Flatten>(),
          std::make_shared<nn::Linear>(input_size * input_size, 256),
          std::make_shared<nn::ReLU>(),
          std::make_shared<nn::Linear>(256, 10)});
  NormalInitWeights(*net, kInitStd);
  return net;
}

std::shared_ptr<nn::Sequential> MlpDropout(int64_t input_size, float dropout1,
                                           float dropout2) {
  CHECK_GT(input_size, 0) << "MlpDropout: input_size must be positive";
  auto net = std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Module>>{
          std::make_shared<nn::Flatten>(),
          std::make_shared<nn::Linear>(input_size * input_size, 256),
          std::make_shared<nn::ReLU>(),
          // Dropout after the first fully connected layer.
          std::make_shared<nn::Dropout>(dropout1),
          std::make_shared<nn::Linear>(256, 256),
          std::make_shared<nn::ReLU>(),
          // Dropout after the second fully connected layer.
          std::make_shared<nn::Dropout>(dropout2),
          std::make_shared<nn::Linear>(256, 10)});
  NormalInitWeights(*net, kInitStd);
  return net;
}

ModelSpec MlpSpec() {
  ModelSpec spec;
  spec.name = "mlp";
  spec.description = "MLP 784-256-10 (ReLU)";
  spec.recipe = {.lr = 0.1f, .batch_size = 256, .epochs = 10, .input_size = 28};
  SetSizeCheckedMake(spec, "MLP", 1, kMlpMaxInputSize, Mlp);
  return spec;
}

ModelSpec MlpDropoutSpec() {
  ModelSpec spec;
  spec.name = "mlp_dropout";
  spec.description = "MLP 784-256-256-10 (ReLU, dropout 0.2 and 0.5)";
  spec.recipe = {.lr = 0.5f, .batch_size = 256, .epochs = 10, .input_size = 28};
  // MlpDropout's dropout probabilities keep their defaults.
  SetSizeCheckedMake(spec, "MLP with dropout", 1, kMlpMaxInputSize,
                     [](int64_t size) { return MlpDropout(size); });
  return spec;
}

}  // namespace dive::models
