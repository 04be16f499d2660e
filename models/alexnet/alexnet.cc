#include "models/alexnet/alexnet.h"

#include <initializer_list>

#include "glog/logging.h"
#include "models/init.h"
#include "nn/activation.h"
#include "nn/conv2d.h"
#include "nn/dropout.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/pool.h"

namespace dive::models {
namespace {

// Output side of a square window (PyTorch's floor rounding); 0 when the
// padded input is smaller than the window.
int64_t OutSide(int64_t in, int64_t kernel, int64_t stride, int64_t padding) {
  if (in + 2 * padding < kernel) return 0;
  return (in + 2 * padding - kernel) / stride + 1;
}

}  // namespace

int64_t AlexNetFeatureSide(int64_t input_size) {
  int64_t s = OutSide(input_size, 11, 4, 1);  // Conv2d(1, 96, 11, 4, 1)
  s = OutSide(s, 3, 2, 0);                    // MaxPool2d(3, 2)
  s = OutSide(s, 5, 1, 2);                    // Conv2d(96, 256, 5, 1, 2)
  s = OutSide(s, 3, 2, 0);                    // MaxPool2d(3, 2)
  s = OutSide(s, 3, 1, 1);                    // 3 x Conv2d(., ., 3, 1, 1)
  return OutSide(s, 3, 2, 0);                 // MaxPool2d(3, 2)
}

std::shared_ptr<nn::Sequential> AlexNet(int64_t input_size) {
  const absl::Status size_ok = CheckInputSize(
      "AlexNet", input_size, kAlexNetMinInputSize, kAlexNetMaxInputSize);
  CHECK(size_ok.ok()) << size_ok;
  const int64_t k = AlexNetFeatureSide(input_size);
  CHECK_GT(k, 0) << "AlexNet: input size " << input_size;
  auto net = std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Module>>{
          // A large 11x11 window with stride 4 to shrink the image quickly,
          // and many more output channels than LeNet.
          std::make_shared<nn::Conv2d>(1, 96, 11, /*stride=*/4, /*padding=*/1),
          std::make_shared<nn::ReLU>(),
          std::make_shared<nn::MaxPool2d>(3, 2),
          // A smaller window, padded to keep the size; more channels.
          std::make_shared<nn::Conv2d>(96, 256, 5, /*stride=*/1, /*padding=*/2),
          std::make_shared<nn::ReLU>(),
          std::make_shared<nn::MaxPool2d>(3, 2),
          // Three 3x3 convolutions without pooling in between.
          std::make_shared<nn::Conv2d>(256, 384, 3, 1, 1),
          std::make_shared<nn::ReLU>(),
          std::make_shared<nn::Conv2d>(384, 384, 3, 1, 1),
          std::make_shared<nn::ReLU>(),
          std::make_shared<nn::Conv2d>(384, 256, 3, 1, 1),
          std::make_shared<nn::ReLU>(),
          std::make_shared<nn::MaxPool2d>(3, 2),
          std::make_shared<nn::Flatten>(),
          // Wide fully connected layers with dropout against overfitting.
          std::make_shared<nn::Linear>(256 * k * k, 4096),
          std::make_shared<nn::ReLU>(),
          std::make_shared<nn::Dropout>(0.5f),
          std::make_shared<nn::Linear>(4096, 4096),
          std::make_shared<nn::ReLU>(),
          std::make_shared<nn::Dropout>(0.5f),
          // 10 Fashion-MNIST classes instead of ImageNet's 1000.
          std::make_shared<nn::Linear>(4096, 10)});
  XavierInitWeights(*net);
  return net;
}

ModelSpec AlexNetSpec() {
  ModelSpec spec;
  spec.name = "alexnet";
  spec.quick_input_size = 96;
  spec.description = "AlexNet (1 channel, 10 classes)";
  spec.recipe = {
      .lr = 0.01f, .batch_size = 128, .epochs = 10, .input_size = 224};
  SetSizeCheckedMake(spec, "AlexNet", kAlexNetMinInputSize,
                     kAlexNetMaxInputSize, AlexNet);
  return spec;
}

}  // namespace dive::models
