#include "cheatsheet/networks.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "autograd/variable.h"
#include "models/alexnet/alexnet.h"
#include "models/densenet/densenet.h"
#include "models/googlenet/googlenet.h"
#include "models/lenet/lenet.h"
#include "models/nin/nin.h"
#include "models/resnet/resnet.h"
#include "models/vgg/vgg.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::cheatsheet {
namespace {

// "Conv2d(1, 6, kernel=5x5, ...)" -> "Conv2d": the class name the book prints.
std::string ClassName(const nn::Module& m) {
  const std::string d = m.Describe();
  return d.substr(0, d.find('('));
}

Shape OutputShape(nn::Module& m, const Shape& input) {
  autograd::NoGradGuard no_grad;
  m.Eval();
  return m(autograd::Variable(Tensor::Zeros(input))).shape();
}

}  // namespace

NetworkShapes LayerShapes(const std::string& model, nn::Module& net,
                          const Shape& input) {
  NetworkShapes out{model, input, {}};
  autograd::NoGradGuard no_grad;
  net.Eval();
  autograd::Variable x(Tensor::Zeros(input));
  for (const auto& [name, layer] : net.children()) {
    x = (*layer)(x);
    out.layers.push_back({ClassName(*layer), x.shape()});
  }
  return out;
}

std::vector<BookNetwork> BookNetworks() {
  using ModulePtr = std::shared_ptr<nn::Module>;
  return {
      {"LeNet", {1, 1, 28, 28}, []() -> ModulePtr { return models::LeNet(28); }},
      {"AlexNet", {1, 1, 224, 224},
       []() -> ModulePtr { return models::AlexNet(224); }},
      {"VGG-11", {1, 1, 224, 224},
       []() -> ModulePtr { return models::Vgg(models::Vgg11Arch(), 224); }},
      {"NiN", {1, 1, 224, 224}, []() -> ModulePtr { return models::NiN(); }},
      {"GoogLeNet", {1, 1, 96, 96},
       []() -> ModulePtr { return models::GoogLeNet(); }},
      {"ResNet-18", {1, 1, 224, 224},
       []() -> ModulePtr { return models::ResNet18(); }},
      {"DenseNet", {1, 1, 96, 96},
       []() -> ModulePtr { return models::DenseNet(); }},
  };
}

NetworkShapes NetworkLayerShapes(const BookNetwork& network, uint64_t seed) {
  ManualSeed(seed);
  const std::shared_ptr<nn::Module> net = network.make();
  return LayerShapes(network.model, *net, network.input);
}

std::vector<ChannelCheck> ChannelArithmetic(uint64_t seed) {
  ManualSeed(seed);
  std::vector<ChannelCheck> checks;
  // NiN: each block keeps its first convolution's channels through two 1x1
  // convolutions; the last one has as many channels as classes.
  struct NinArgs {
    int64_t in, out, k, s, p, side;
  };
  for (const NinArgs& a : {NinArgs{1, 96, 11, 4, 0, 224},
                           NinArgs{96, 256, 5, 1, 2, 26},
                           NinArgs{256, 384, 3, 1, 1, 12},
                           NinArgs{384, 10, 3, 1, 1, 5}}) {
    auto block = models::NinBlock(a.in, a.out, a.k, a.s, a.p);
    const Shape y = OutputShape(*block, {1, a.in, a.side, a.side});
    checks.push_back({absl::StrCat("nin_block(", a.in, ", ", a.out, ", ", a.k,
                                   ", ", a.s, ", ", a.p, ")"),
                      a.out, y[1], y});
  }
  // GoogLeNet: the four paths are concatenated on the channels.
  struct InceptionArgs {
    int64_t in, c1, c2a, c2b, c3a, c3b, c4, side;
  };
  for (const InceptionArgs& a :
       {InceptionArgs{192, 64, 96, 128, 16, 32, 32, 12},
        InceptionArgs{256, 128, 128, 192, 32, 96, 64, 12},
        InceptionArgs{480, 192, 96, 208, 16, 48, 64, 6},
        InceptionArgs{512, 160, 112, 224, 24, 64, 64, 6},
        InceptionArgs{512, 128, 128, 256, 24, 64, 64, 6},
        InceptionArgs{512, 112, 144, 288, 32, 64, 64, 6},
        InceptionArgs{528, 256, 160, 320, 32, 128, 128, 6},
        InceptionArgs{832, 256, 160, 320, 32, 128, 128, 3},
        InceptionArgs{832, 384, 192, 384, 48, 128, 128, 3}}) {
    models::Inception block(a.in, a.c1, {a.c2a, a.c2b}, {a.c3a, a.c3b}, a.c4);
    const Shape y = OutputShape(block, {1, a.in, a.side, a.side});
    checks.push_back({block.Describe(), a.c1 + a.c2b + a.c3b + a.c4, y[1], y});
  }
  // DenseNet: the book's blk = DenseBlock(2, 3, 10) on X [4, 3, 8, 8] gives
  // 3 + 2 * 10 = 23 channels; transition_block(23, 10) gives 10 channels at
  // half the resolution.
  models::DenseBlock dense(2, 3, 10);
  const Shape y = OutputShape(dense, {4, 3, 8, 8});
  checks.push_back({dense.Describe(), 3 + 2 * 10, y[1], y});
  auto transition = models::TransitionBlock(23, 10);
  const Shape t = OutputShape(*transition, y);
  checks.push_back({"transition_block(23, 10)", 10, t[1], t});
  return checks;
}

}  // namespace dive::cheatsheet
