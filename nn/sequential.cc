#include "nn/sequential.h"

#include <algorithm>
#include <utility>

#include "glog/logging.h"
#include "nn/activation.h"
#include "nn/batch_norm.h"
#include "nn/conv2d.h"
#include "nn/dropout.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/pool.h"

namespace dive::nn {
namespace {

// The module at `i` of `seq` as an M, or null (also past the end).
template <typename M>
std::shared_ptr<M> ModuleAs(const Sequential& seq, size_t i) {
  return i < seq.size() ? std::dynamic_pointer_cast<M>(seq.at(i)) : nullptr;
}

// The convolution whose output, its ReLU aside, is `m`'s output: `m` itself,
// or a Sequential's last; null for anything else.
std::shared_ptr<Conv2d> OutputConvolution(const std::shared_ptr<Module>& m) {
  if (auto conv = std::dynamic_pointer_cast<Conv2d>(m)) return conv;
  const auto seq = std::dynamic_pointer_cast<Sequential>(m);
  if (seq == nullptr || seq->size() == 0) return nullptr;
  size_t last = seq->size() - 1;
  if (last > 0 && ModuleAs<ReLU>(*seq, last) != nullptr) --last;
  return OutputConvolution(seq->at(last));
}

// Whether the output of module i - 1 of `seq` goes only into bf16 products:
// module i, past Flatten and Dropout (an identity in evaluation), is a
// Conv2d or Linear or a Sequential that starts so; past the end, whether
// `seq`'s own output does.
bool FeedsProducts(const Sequential& seq, size_t i, bool output_does) {
  for (; i < seq.size(); ++i) {
    if (ModuleAs<Flatten>(seq, i) == nullptr &&
        ModuleAs<Dropout>(seq, i) == nullptr) {
      break;
    }
  }
  if (i == seq.size()) return output_does;
  if (ModuleAs<Conv2d>(seq, i) != nullptr ||
      ModuleAs<Linear>(seq, i) != nullptr) {
    return true;
  }
  const auto inner = ModuleAs<Sequential>(seq, i);
  return inner != nullptr && FeedsProducts(*inner, 0, false);
}

// Whether module i of `seq` is a Conv2d or a Sequential that starts with
// one (past the end, whether `seq`'s own output goes to one): what a max
// pooling before it may hand bf16 values.
bool FeedsConvolution(const Sequential& seq, size_t i, bool output_does) {
  if (i == seq.size()) return output_does;
  if (ModuleAs<Conv2d>(seq, i) != nullptr) return true;
  const auto inner = ModuleAs<Sequential>(seq, i);
  return inner != nullptr && FeedsConvolution(*inner, 0, false);
}

}  // namespace

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (const std::shared_ptr<Module>& module : modules) Add(module);
}

Sequential::Sequential(const std::vector<std::shared_ptr<Module>>& modules) {
  for (const std::shared_ptr<Module>& module : modules) Add(module);
}

autograd::Variable Sequential::Forward(const autograd::Variable& x) {
  const std::vector<bool>& absorbed = absorbed_[is_training() ? 1 : 0];
  const size_t n = children().size();
  const bool may_chain = !absorbed.empty() && !is_training() && ChainsAllowed();
  autograd::Variable y = x;
  for (size_t i = 0; i < n; ++i) {
    if (!absorbed.empty() && absorbed[i]) continue;
    if (may_chain) {
      // The modules from i on that amount to convolutions, as one chain: the
      // longest run oneDNN takes (a run ending before one it does not, such
      // as ResNet's last blocks on 3x3 maps).
      std::vector<ChainedConv> chain;
      std::vector<std::pair<size_t, size_t>> ends;  // (module end, stages)
      for (size_t j = i; j < n; ++j) {
        if (absorbed[j]) continue;
        if (!children()[j].second->AppendToConvChain(&chain)) break;
        ends.emplace_back(j + 1, chain.size());
      }
      for (; !ends.empty(); ends.pop_back()) {
        chain.resize(ends.back().second);
        if (autograd::Variable z = TryConvChain(chain, y); z.defined()) {
          y = std::move(z);
          i = ends.back().first - 1;
          break;
        }
      }
      if (!ends.empty()) continue;
    }
    y = (*children()[i].second)(y);
  }
  return y;
}

bool Sequential::AppendToConvChain(std::vector<ChainedConv>* chain) const {
  const std::vector<bool>& absorbed = absorbed_[is_training() ? 1 : 0];
  if (absorbed.empty() || is_training() || has_forward_hooks()) return false;
  for (size_t i = 0; i < children().size(); ++i) {
    if (!absorbed[i] && !children()[i].second->AppendToConvChain(chain)) {
      return false;
    }
  }
  return true;
}

void Sequential::Fuse() {
  const size_t n = children().size();
  std::vector<bool>& in_eval = absorbed_[0];
  std::vector<bool>& in_training = absorbed_[1];
  in_eval.assign(n, false);
  in_training.assign(n, false);
  for (size_t i = 0; i < n; ++i) {
    const std::shared_ptr<Module>& module = children()[i].second;
    if (auto conv = ModuleAs<Conv2d>(*this, i)) {
      auto bn = ModuleAs<BatchNorm2d>(*this, i + 1);
      if (bn != nullptr &&
          bn->options().num_features != conv->options().out_channels) {
        bn = nullptr;
      }
      const size_t after = bn != nullptr ? i + 2 : i + 1;
      const bool relu = ModuleAs<ReLU>(*this, after) != nullptr;
      conv->FuseWith(bn, relu);
      const size_t next = relu ? after + 1 : after;
      const bool feeds_conv = ModuleAs<Conv2d>(*this, next) != nullptr;
      conv->set_feeds_convolution(feeds_conv);
      // Max pooling reads bf16 (tensor/pool.h), as autocast stores it.
      const bool into_pool = ModuleAs<MaxPool2d>(*this, next) != nullptr;
      if (into_pool) conv->set_feeds_autocast_bf16(true);
      conv->set_feeds_max_pool_into_products(
          into_pool && FeedsProducts(*this, next + 1, output_feeds_products_));
      if (bn != nullptr) {
        bn->FuseRelu(relu);
        bn->set_feeds_convolution(feeds_conv);
        in_eval[i + 1] = true;
      }
      if (relu) in_eval[after] = in_training[after] = true;
      i = relu ? after : after - 1;
    } else if (auto bn = ModuleAs<BatchNormBase>(*this, i)) {
      const bool relu = ModuleAs<ReLU>(*this, i + 1) != nullptr;
      bn->FuseRelu(relu);
      bn->set_feeds_convolution(ModuleAs<Conv2d>(*this, relu ? i + 2 : i + 1) !=
                                nullptr);
      if (relu) {
        in_eval[i + 1] = in_training[i + 1] = true;
        ++i;
      }
    } else {
      if (auto pool = ModuleAs<MaxPool2d>(*this, i)) {
        pool->set_feeds_convolution(
            FeedsConvolution(*this, i + 1, output_feeds_conv_));
      }
      // A block ending in max pooling (VGG's) learns where its output goes.
      if (auto block = ModuleAs<Sequential>(*this, i)) {
        block->output_feeds_products_ =
            FeedsProducts(*this, i + 1, output_feeds_products_);
        block->output_feeds_conv_ =
            FeedsConvolution(*this, i + 1, output_feeds_conv_);
      }
      module->Fuse();
      // A block ending in a convolution (NiN's) followed by max pooling.
      if (ModuleAs<MaxPool2d>(*this, i + 1) != nullptr) {
        if (auto conv = OutputConvolution(module)) {
          conv->set_feeds_autocast_bf16(true);
          conv->set_feeds_max_pool_into_products(
              FeedsProducts(*this, i + 2, output_feeds_products_));
        }
      }
    }
  }
}

const std::shared_ptr<Module>& Sequential::at(size_t index) const {
  CHECK_LT(index, size()) << "Sequential::at(" << index << ") of a Sequential "
                          << "of " << size() << " modules";
  return children()[index].second;
}

}  // namespace dive::nn
