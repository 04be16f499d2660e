// File: nn/sequential.h
// -----------------------------------------------------------------------------
//
// `Sequential` chains modules: the output of each is the input of the next.
// Its children are named "0", "1", ... in order, so parameters get PyTorch's
// names ("0.weight", "2.bias", and "features.0.weight" when the Sequential is
// itself registered as "features").
//
// Example:
//
//   auto net = std::make_shared<nn::Sequential>(
//       std::initializer_list<std::shared_ptr<nn::Module>>{
//           std::make_shared<nn::Flatten>(),
//           std::make_shared<nn::Linear>(784, 256),
//           std::make_shared<nn::ReLU>()});
//   auto head = net->Add(std::make_shared<nn::Linear>(256, 10));  // "3"
//   Variable logits = (*net)(x);              // [N, 1, 28, 28] -> [N, 10]
//
//   // Modules collected at run time (a stage of blocks):
//   std::vector<std::shared_ptr<nn::Module>> blocks = ...;
//   auto stage = std::make_shared<nn::Sequential>(std::move(blocks));

#ifndef NN_SEQUENTIAL_H_
#define NN_SEQUENTIAL_H_

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "autograd/variable.h"
#include "nn/conv2d.h"
#include "nn/module.h"

namespace dive::nn {

class Sequential : public Module {
 public:
  Sequential() = default;
  // The modules in order (none may be null).
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  explicit Sequential(const std::vector<std::shared_ptr<Module>>& modules);

  // Appends `module` under the next index; returns it with its own type.
  template <typename M>
  std::shared_ptr<M> Add(std::shared_ptr<M> module) {
    return RegisterModule(absl::StrCat(children().size()), std::move(module));
  }

  // Applies the modules in order; the identity when empty. After Fuse, the
  // modules another absorbed in the current mode are skipped, and in
  // evaluation consecutive modules that amount to convolutions
  // (Module::AppendToConvChain: convolutions with what they absorb, ResNet
  // blocks, Sequentials of them) run as one chain where TryConvChain
  // (nn/conv2d.h) runs them: the longest such run from each module on.
  autograd::Variable Forward(const autograd::Variable& x) override;
  // Its modules' convolutions in turn, after Fuse, in evaluation.
  bool AppendToConvChain(std::vector<ChainedConv>* chain) const override;
  // Fuses each Conv2d with a BatchNorm2d and/or a ReLU right after it
  // (Conv2d::FuseWith; the BatchNorm takes the ReLU in training mode), and
  // each other BatchNorm with a ReLU right after it; recurses into the
  // other modules. Marks what each convolution's output goes into
  // (Conv2d::set_feeds_convolution, and set_feeds_autocast_bf16 and
  // set_feeds_max_pool_into_products for a max pooling, also after a nested
  // Sequential that ends in the convolution, or within one that ends in the
  // pooling).
  void Fuse() override;
  // "Sequential".
  std::string Describe() const override { return "Sequential"; }

  size_t size() const { return children().size(); }
  // The module at `index`; CHECK-fails when out of range.
  const std::shared_ptr<Module>& at(size_t index) const;

 private:
  // absorbed_[mode][i]: module i is fused into a module before it and not
  // called in that mode (0 evaluation, 1 training). Empty until Fuse.
  std::vector<bool> absorbed_[2];
  // Whether this Sequential's output goes only into bf16 products (set by
  // the Sequential around it, before its Fuse).
  bool output_feeds_products_ = false;
  // Whether its output goes straight into a convolution (for its last max
  // pooling; set by the enclosing Sequential's Fuse).
  bool output_feeds_conv_ = false;
};

}  // namespace dive::nn

#endif  // NN_SEQUENTIAL_H_
