#include "models/vgg/vgg.h"

#include <initializer_list>

#include "absl/strings/str_cat.h"
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

absl::Status CheckDivisor(int divisor) {
  if (divisor >= 1 && divisor <= kVggMaxDivisor) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("VGG-11 needs a width divisor between 1 and ",
                   kVggMaxDivisor, ", got ", divisor));
}

absl::Status CheckVggInputSize(int64_t input_size) {
  return CheckInputSize("VGG-11", input_size, kVggMinInputSize,
                        kVggMaxInputSize);
}

}  // namespace

VggArch Vgg11Arch() {
  return {{1, 64}, {1, 128}, {2, 256}, {2, 512}, {2, 512}};
}

std::shared_ptr<nn::Sequential> VggBlock(int num_convs, int64_t in_channels,
                                         int64_t out_channels) {
  CHECK_GT(num_convs, 0) << "VggBlock: num_convs";
  auto block = std::make_shared<nn::Sequential>();
  for (int i = 0; i < num_convs; ++i) {
    block->Add(std::make_shared<nn::Conv2d>(in_channels, out_channels, 3,
                                            /*stride=*/1, /*padding=*/1));
    block->Add(std::make_shared<nn::ReLU>());
    in_channels = out_channels;
  }
  block->Add(std::make_shared<nn::MaxPool2d>(2, 2));
  return block;
}

std::shared_ptr<nn::Sequential> Vgg(const VggArch& conv_arch,
                                    int64_t input_size) {
  CHECK(!conv_arch.empty()) << "Vgg: empty conv_arch";
  CHECK_LT(conv_arch.size(), 30u) << "Vgg: too many blocks";
  const int64_t min_size = int64_t{1} << conv_arch.size();
  const absl::Status size_ok =
      CheckInputSize("VGG", input_size, min_size, kVggMaxInputSize);
  CHECK(size_ok.ok()) << size_ok;
  auto net = std::make_shared<nn::Sequential>();
  // The convolutional part.
  int64_t in_channels = 1;
  int64_t side = input_size;
  for (const auto& [num_convs, out_channels] : conv_arch) {
    net->Add(VggBlock(num_convs, in_channels, out_channels));
    in_channels = out_channels;
    side /= 2;
  }
  // The fully connected part.
  net->Add(std::make_shared<nn::Flatten>());
  net->Add(std::make_shared<nn::Linear>(in_channels * side * side, 4096));
  net->Add(std::make_shared<nn::ReLU>());
  net->Add(std::make_shared<nn::Dropout>(0.5f));
  net->Add(std::make_shared<nn::Linear>(4096, 4096));
  net->Add(std::make_shared<nn::ReLU>());
  net->Add(std::make_shared<nn::Dropout>(0.5f));
  net->Add(std::make_shared<nn::Linear>(4096, 10));
  XavierInitWeights(*net);
  return net;
}

std::shared_ptr<nn::Sequential> Vgg11(int divisor, int64_t input_size) {
  const absl::Status divisor_ok = CheckDivisor(divisor);
  CHECK(divisor_ok.ok()) << divisor_ok;
  const absl::Status size_ok = CheckVggInputSize(input_size);
  CHECK(size_ok.ok()) << size_ok;
  VggArch arch = Vgg11Arch();
  for (auto& [num_convs, channels] : arch) channels /= divisor;
  return Vgg(arch, input_size);
}

ModelSpec VggSpec(int divisor) {
  ModelSpec spec;
  spec.name = "vgg";
  spec.min_input_size = kVggMinInputSize;
  spec.max_input_size = kVggMaxInputSize;
  spec.quick_input_size = 64;
  spec.channels_last_training = true;
  spec.description =
      divisor == 1 ? "VGG-11"
                   : absl::StrCat("VGG-11 with channels divided by ", divisor);
  spec.recipe = {
      .lr = 0.05f, .batch_size = 128, .epochs = 10, .input_size = 224};
  spec.make = [divisor](int64_t size)
      -> absl::StatusOr<std::shared_ptr<nn::Module>> {
    if (absl::Status s = CheckDivisor(divisor); !s.ok()) return s;
    if (absl::Status s = CheckVggInputSize(size); !s.ok()) return s;
    return Vgg11(divisor, size);
  };
  return spec;
}

}  // namespace dive::models
