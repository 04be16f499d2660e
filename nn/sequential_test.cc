#include "nn/sequential.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nn/activation.h"
#include "nn/batch_norm.h"
#include "nn/bf16_activations.h"
#include "nn/conv2d.h"
#include "nn/dropout.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/pool.h"
#include "nn/testing.h"
#include "tensor/conv.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tensor/testing.h"

namespace dive::nn {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::Not;
using ::testing::Pointwise;

TEST(SequentialTest, ChainsInOrder) {
  auto fc1 = std::make_shared<Linear>(2, 2);
  auto fc2 = std::make_shared<Linear>(2, 1);
  AssignValues(fc1->weight().data(), {1, 0, 0, -1});
  AssignValues(fc1->bias().data(), {0, 0});
  AssignValues(fc2->weight().data(), {1, 1});
  AssignValues(fc2->bias().data(), {0.5f});
  Sequential seq({fc1, std::make_shared<ReLU>(), fc2});
  EXPECT_EQ(seq.size(), 3u);
  EXPECT_EQ(seq.Describe(), "Sequential");
  // [3, 2] -> [3, -2] -> [3, 0] -> 3.5 ; [-1, -4] -> [-1, 4] -> [0, 4] -> 4.5
  const autograd::Variable y =
      seq(autograd::Variable(Tensor::FromVector({3, 2, -1, -4}, {2, 2})));
  EXPECT_THAT(y.data().ToVector(),
              Pointwise(FloatNear(1e-6), std::vector<float>{3.5f, 4.5f}));
}

TEST(SequentialTest, AddNamesByIndexAndKeepsTheType) {
  Sequential seq;
  std::shared_ptr<Linear> fc = seq.Add(std::make_shared<Linear>(3, 4));
  seq.Add(std::make_shared<Tanh>());
  EXPECT_EQ(fc->in_features(), 3);
  EXPECT_EQ(seq.at(0), fc);
  EXPECT_EQ(seq.children()[1].first, "1");
  EXPECT_EQ(seq.NamedParameters()[0].first, "0.weight");
}

TEST(SequentialTest, FromVectorKeepsTheOrder) {
  auto fc = std::make_shared<Linear>(3, 4);
  auto tanh = std::make_shared<Tanh>();
  const std::vector<std::shared_ptr<Module>> modules = {fc, tanh};
  Sequential seq(modules);
  ASSERT_EQ(seq.size(), 2u);
  EXPECT_EQ(seq.at(0), fc);
  EXPECT_EQ(seq.at(1), tanh);
  EXPECT_EQ(seq.children()[1].first, "1");
  EXPECT_EQ(Sequential(std::vector<std::shared_ptr<Module>>()).size(), 0u);
}

TEST(SequentialTest, EmptyIsIdentity) {
  Sequential seq;
  const Tensor x = Tensor::FromVector({1, 2}, {1, 2});
  EXPECT_THAT(seq(autograd::Variable(x)).data().ToVector(), ElementsAre(1, 2));
}

TEST(SequentialTest, GradCheck) {
  ManualSeed(12);
  Sequential seq({std::make_shared<Linear>(3, 4), std::make_shared<Tanh>(),
                  std::make_shared<Linear>(4, 2)});
  const absl::Status s = GradCheckModule(seq, Normal({3, 3}, 0, 1));
  EXPECT_TRUE(s.ok()) << s;
}

// Fuse absorbs the BatchNorm2d and ReLU after each Conv2d: in evaluation
// mode they are not called and the convolution computes what the three did;
// in training mode the BatchNorm takes the ReLU (bit for bit). A BatchNorm
// with no convolution before it stays.
TEST(SequentialTest, FuseAbsorbsBatchNormAndRelu) {
  ManualSeed(13);
  auto conv1 = std::make_shared<Conv2d>(2, 3, 3, 1, 1);
  auto bn1 = std::make_shared<BatchNorm2d>(3);
  auto relu1 = std::make_shared<ReLU>();
  auto conv2 = std::make_shared<Conv2d>(3, 3, 1);
  auto relu2 = std::make_shared<ReLU>();
  auto lone_bn = std::make_shared<BatchNorm2d>(3);
  AssignValues(bn1->running_mean(), {0.1f, -0.2f, 0.3f});
  AssignValues(bn1->running_var(), {2.0f, 0.5f, 1.0f});
  Sequential seq({conv1, bn1, relu1, conv2, relu2, lone_bn});
  std::vector<const Module*> called;
  autograd::HookHandle hooks = seq.RegisterForwardHooksOnAll(
      [&called](Module& m, const autograd::Variable&) {
        called.push_back(&m);
        return autograd::Variable();
      },
      nullptr);
  const autograd::Variable x(Normal({2, 2, 5, 5}, 0, 1));
  seq.Eval();
  const std::vector<float> want = seq(x).data().ToVector();
  std::map<std::string, Tensor> before;
  for (const auto& [key, t] : seq.StateDict()) before[key] = t.Clone();
  seq.Train();
  const std::vector<float> want_training = seq(x).data().ToVector();
  ASSERT_TRUE(seq.LoadStateDict(before).ok());  // the statistics moved
  seq.Fuse();
  seq.Eval();
  called.clear();
  EXPECT_THAT(seq(x).data().ToVector(), Pointwise(FloatNear(1e-5), want));
  EXPECT_THAT(called, ElementsAre(&seq, conv1.get(), conv2.get(),
                                  lone_bn.get()));
  EXPECT_TRUE(conv1->FoldsBatchNorm() && conv1->AppliesRelu());
  EXPECT_TRUE(!conv2->FoldsBatchNorm() && conv2->AppliesRelu());
  seq.Train();
  called.clear();
  EXPECT_EQ(seq(x).data().ToVector(), want_training);
  EXPECT_THAT(called, ElementsAre(&seq, conv1.get(), bn1.get(), conv2.get(),
                                  lone_bn.get()));
  EXPECT_TRUE(bn1->AppliesRelu());
  EXPECT_FALSE(lone_bn->AppliesRelu());
}

// Freeze snapshots the weights each layer's calls use (the convolution's
// with its BatchNorm folded) as frozen tensors, whose kernels keep what they
// derive from them: the values of unfrozen evaluation. Later changes to the
// parameters are not seen until Freeze again or LoadStateDict; Thaw and
// Train drop the snapshots.
TEST(SequentialTest, FreezeSnapshotsTheWeightsUntilFreezeLoadOrTrain) {
  ManualSeed(14);
  auto conv = std::make_shared<Conv2d>(2, 3, 3, 1, 1);
  auto bn = std::make_shared<BatchNorm2d>(3);
  auto fc = std::make_shared<Linear>(3 * 5 * 5, 4);
  AssignValues(bn->running_mean(), {0.1f, -0.2f, 0.3f});
  AssignValues(bn->running_var(), {2.0f, 0.5f, 1.0f});
  Sequential seq(
      {conv, bn, std::make_shared<ReLU>(), std::make_shared<Flatten>(), fc});
  seq.Fuse();
  const autograd::Variable x(Normal({2, 2, 5, 5}, 0, 1));
  autograd::NoGradGuard no_grad;
  const auto output = [&] { return seq(x).data().ToVector(); };
  seq.Eval();
  const std::vector<float> want = output();
  std::map<std::string, Tensor> state;
  for (const auto& [key, t] : seq.StateDict()) state[key] = t.Clone();

  seq.Freeze();
  EXPECT_TRUE(seq.is_frozen() && conv->is_frozen() && !seq.is_training());
  const Tensor frozen_weight = conv->EffectiveWeightAndBias().first.data();
  EXPECT_NE(frozen_weight.frozen_forms(), nullptr);
  EXPECT_FALSE(frozen_weight.SharesStorage(conv->weight().data()));
  EXPECT_THAT(output(), Pointwise(FloatNear(1e-5), want));
  EXPECT_GE(frozen_weight.frozen_forms()->size(), 1u);  // a pack was kept

  Tensor w = fc->weight().data();  // shares the parameter's storage
  w.CopyFrom(ops::AddScalar(w, 0.5f));
  EXPECT_THAT(output(), Pointwise(FloatNear(1e-5), want));  // the snapshot
  seq.Freeze();
  const std::vector<float> moved = output();
  seq.Thaw();
  EXPECT_FALSE(seq.is_frozen() || fc->is_frozen() || seq.is_training());
  EXPECT_THAT(moved, Pointwise(FloatNear(1e-5), output()));
  EXPECT_THAT(moved, Not(Pointwise(FloatNear(1e-2), want)));

  seq.Freeze();
  ASSERT_TRUE(seq.LoadStateDict(state).ok());
  EXPECT_TRUE(seq.is_frozen());
  EXPECT_THAT(output(), Pointwise(FloatNear(1e-5), want));
  // Fuse takes the snapshot again: here without the fold.
  conv->FuseWith(nullptr, false);
  EXPECT_EQ(conv->EffectiveWeightAndBias().first.data().ToVector(),
            conv->weight().data().ToVector());
  seq.Train();
  EXPECT_FALSE(seq.is_frozen() || conv->is_frozen() || fc->is_frozen());
  EXPECT_TRUE(conv->EffectiveWeightAndBias().first.data().SharesStorage(
      conv->weight().data()));
}

// The dtype of each module's output in the calls of a model, seen through
// forward hooks on all its modules while this lives.
class OutputDTypes {
 public:
  explicit OutputDTypes(Module& model)
      : hooks_(model.RegisterForwardHooksOnAll(
            nullptr, [this](Module& m, const autograd::Variable&,
                            const autograd::Variable& out) {
              outputs_.emplace_back(&m, out.data().dtype());
              return autograd::Variable();
            })) {}
  OutputDTypes(const OutputDTypes&) = delete;  // the hook holds `this`
  OutputDTypes& operator=(const OutputDTypes&) = delete;
  void Clear() { outputs_.clear(); }
  // The dtype of `m`'s first output since Clear; kInt64 if it was not called.
  DType Of(const Module* m) const {
    for (const auto& [module, dtype] : outputs_) {
      if (module == m) return dtype;
    }
    return DType::kInt64;
  }

 private:
  std::vector<std::pair<const Module*, DType>> outputs_;
  autograd::HookHandle hooks_;
};

// Fuse marks each convolution whose output goes straight into another (past
// its ReLU and BatchNorm): it stores that output in bf16 under bf16 matmuls,
// and only where its BatchNorm is folded (evaluation), never in float32.
TEST(SequentialTest, FuseMarksConvolutionsFeedingConvolutions) {
  ManualSeed(15);
  auto conv1 = std::make_shared<Conv2d>(2, 3, 3, 1, 1);
  auto conv2 = std::make_shared<Conv2d>(3, 3, 1);
  auto bn2 = std::make_shared<BatchNorm2d>(3);
  auto conv3 = std::make_shared<Conv2d>(3, 3, 1);
  auto conv4 = std::make_shared<Conv2d>(3, 2, 1);
  Sequential seq({conv1, std::make_shared<ReLU>(), conv2, bn2,
                  std::make_shared<ReLU>(), conv3, conv4,
                  std::make_shared<MaxPool2d>(2, 2)});
  seq.Fuse();
  EXPECT_TRUE(conv1->feeds_convolution());
  EXPECT_TRUE(conv2->feeds_convolution());
  EXPECT_TRUE(conv3->feeds_convolution());
  EXPECT_FALSE(conv4->feeds_convolution());
  EXPECT_TRUE(bn2->feeds_convolution());
  OutputDTypes outputs(seq);
  const autograd::Variable x(Normal({2, 2, 6, 6}, 0, 1));
  for (const bool training : {true, false}) {
    seq.Train(training);
    outputs.Clear();
    seq(x);
    EXPECT_EQ(outputs.Of(conv1.get()), DType::kFloat32);
    {
      const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
      outputs.Clear();
      seq(x);
    }
    EXPECT_EQ(outputs.Of(conv1.get()), DType::kBfloat16);
    // In training conv2's output goes to its BatchNorm, in float32 unless
    // batch norm inputs are chosen in bf16 (nn/bf16_activations.h).
    EXPECT_EQ(outputs.Of(conv2.get()),
              training ? DType::kFloat32 : DType::kBfloat16);
    {
      const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
      const ScopedBf16Activations stored(Bf16Activations::kAutocast);
      outputs.Clear();
      seq(x);
    }
    EXPECT_EQ(outputs.Of(conv2.get()), DType::kBfloat16);
    // Its BatchNorm (called in training only) stores its output, past the
    // ReLU, in bf16 for conv3.
    EXPECT_EQ(outputs.Of(bn2.get()),
              training ? DType::kBfloat16 : DType::kInt64);
    EXPECT_EQ(outputs.Of(conv3.get()), DType::kBfloat16);
    // conv4's goes to max pooling: in bf16 where autocast training stores
    // activations in bf16; the pooling's output is float32.
    EXPECT_EQ(outputs.Of(conv4.get()),
              training ? DType::kBfloat16 : DType::kFloat32);
    EXPECT_EQ(outputs.Of(&seq), DType::kFloat32);
  }
}

// In evaluation under bf16 matmuls, a convolution whose output goes through
// max pooling only into products (a convolution, or a Linear past Flatten
// and Dropout), also across nested Sequentials (a block that ends in the
// pooling, as VGG's, or in the convolution, as NiN's), stores that output in
// bf16, and the logits are the unfused model's bit for bit: rounding
// commutes with the maximum, and the products round anyway. Not where the
// pooling's output goes elsewhere (a ReLU), nor in training or float32.
TEST(SequentialTest, FuseStoresBf16ThroughMaxPoolingIntoProducts) {
  ManualSeed(16);
  const auto make = [] {
    auto block1 =
        std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
            std::make_shared<Conv2d>(4, 4, 3, 1, 1), std::make_shared<ReLU>(),
            std::make_shared<Conv2d>(4, 4, 3, 1, 1), std::make_shared<ReLU>(),
            std::make_shared<MaxPool2d>(2, 2)});
    auto block2 =
        std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
            std::make_shared<Conv2d>(4, 4, 1), std::make_shared<ReLU>()});
    return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
        std::make_shared<Conv2d>(1, 4, 3, 1, 1), std::make_shared<ReLU>(),
        std::make_shared<MaxPool2d>(2, 2), block1, block2,
        std::make_shared<MaxPool2d>(1, 1), std::make_shared<Flatten>(),
        std::make_shared<Dropout>(0.5f), std::make_shared<Linear>(16, 3)});
  };
  const std::shared_ptr<Sequential> plain = make(), fused = make();
  ASSERT_TRUE(fused->LoadStateDict(plain->StateDict()).ok());
  fused->Fuse();
  const ScopedConvLibrary dive(ConvLibrary::kDive);
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  const autograd::Variable x(Normal({3, 1, 8, 8}, 0, 1));
  std::vector<const Module*> convs, pools;
  for (const auto& [name, module] : fused->NamedModules()) {
    if (dynamic_cast<const Conv2d*>(module) != nullptr) convs.push_back(module);
    if (dynamic_cast<const MaxPool2d*>(module) != nullptr) {
      pools.push_back(module);
    }
  }
  ASSERT_EQ(convs.size(), 4u);
  ASSERT_EQ(pools.size(), 3u);
  {
    autograd::NoGradGuard no_grad;
    plain->Eval();
    fused->Eval();
    EXPECT_EQ((*fused)(x).data().ToVector(), (*plain)(x).data().ToVector());
  }
  OutputDTypes outputs(*fused);
  for (const bool training : {false, true}) {
    fused->Train(training);
    outputs.Clear();
    (*fused)(x);
    for (const Module* conv : convs) {
      EXPECT_EQ(outputs.Of(conv), training && conv != convs[1]
                                      ? DType::kFloat32
                                      : DType::kBfloat16)
          << conv->Describe() << (training ? " in training" : "");
    }
    // A max pooling of bf16 values into a convolution (the first, and
    // block1's last, into block2) passes them on in bf16; in training
    // (without autocast) both read float32; the last, into the Linear,
    // writes float32.
    for (const Module* pool : {pools[0], pools[1]}) {
      EXPECT_EQ(outputs.Of(pool), training ? DType::kFloat32 : DType::kBfloat16)
          << (training ? "in training" : "");
    }
    EXPECT_EQ(outputs.Of(pools[2]), DType::kFloat32);
  }
  auto first = std::make_shared<Conv2d>(1, 4, 3, 1, 1);
  Sequential elsewhere({first, std::make_shared<MaxPool2d>(2, 2),
                        std::make_shared<ReLU>(),
                        std::make_shared<Conv2d>(4, 4, 3, 1, 1)});
  elsewhere.Fuse();
  elsewhere.Eval();
  OutputDTypes other(elsewhere);
  elsewhere(x);
  EXPECT_EQ(other.Of(first.get()), DType::kFloat32);
}

// A block that ends in a convolution and its ReLU (NiN's), followed by max
// pooling in the outer Sequential: the block's last convolution is marked,
// its others and a block followed by anything else are not.
TEST(SequentialTest, FuseMarksABlocksLastConvolutionFeedingMaxPooling) {
  ManualSeed(16);
  auto conv1 = std::make_shared<Conv2d>(2, 3, 3, 1, 1);
  auto conv2 = std::make_shared<Conv2d>(3, 3, 1);
  auto conv3 = std::make_shared<Conv2d>(3, 3, 1);
  auto block1 = std::make_shared<Sequential>(
      std::initializer_list<std::shared_ptr<Module>>{
          conv1, std::make_shared<ReLU>(), conv2, std::make_shared<ReLU>()});
  auto block2 = std::make_shared<Sequential>(
      std::initializer_list<std::shared_ptr<Module>>{conv3,
                                                     std::make_shared<ReLU>()});
  auto pool = std::make_shared<MaxPool2d>(2, 2);
  Sequential seq({block1, pool, block2, std::make_shared<AvgPool2d>(3, 3)});
  seq.Fuse();
  OutputDTypes outputs(seq);
  const autograd::Variable x(Normal({2, 2, 6, 6}, 0, 1));
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  const ScopedBf16Activations stored(Bf16Activations::kAutocast);
  seq.Train(true);
  seq(x);
  EXPECT_EQ(outputs.Of(conv1.get()), DType::kBfloat16);  // into conv2
  EXPECT_EQ(outputs.Of(conv2.get()), DType::kBfloat16);  // into the pooling
  EXPECT_EQ(outputs.Of(pool.get()), DType::kBfloat16);   // into block2's conv
  EXPECT_EQ(outputs.Of(conv3.get()), DType::kFloat32);   // into AvgPool2d
  // In evaluation conv2's stays bf16 for another reason: the pooling's
  // output goes into conv3, a product (exact).
  seq.Train(false);
  outputs.Clear();
  seq(x);
  EXPECT_EQ(outputs.Of(conv1.get()), DType::kBfloat16);
  EXPECT_EQ(outputs.Of(conv2.get()), DType::kBfloat16);
  EXPECT_EQ(outputs.Of(conv3.get()), DType::kFloat32);
}

// A lone BatchNorm (DenseNet's pre-activation BatchNorm, ReLU, Conv2d) is
// marked when a convolution follows it, past its ReLU, and not otherwise.
TEST(SequentialTest, FuseMarksBatchNormsFeedingConvolutions) {
  auto bn1 = std::make_shared<BatchNorm2d>(3);
  auto bn2 = std::make_shared<BatchNorm2d>(2);
  Sequential seq({bn1, std::make_shared<ReLU>(),
                  std::make_shared<Conv2d>(3, 2, 1), bn2,
                  std::make_shared<MaxPool2d>(2, 2)});
  seq.Fuse();
  EXPECT_TRUE(bn1->feeds_convolution());
  EXPECT_FALSE(bn2->feeds_convolution());
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  DType bn1_out = DType::kInt64;
  autograd::HookHandle hook =
      bn1->RegisterForwardHook([&bn1_out](Module&, const autograd::Variable&,
                                          const autograd::Variable& out) {
        bn1_out = out.data().dtype();
        return autograd::Variable();
      });
  const autograd::Variable y =
      seq(autograd::Variable(Normal({2, 3, 4, 4}, 0, 1)));
  EXPECT_EQ(bn1_out, DType::kBfloat16);
  EXPECT_EQ(y.data().dtype(), DType::kFloat32);
}

// A BatchNorm followed by a ReLU (DenseNet's pre-activation) fuses in both
// modes; gradients stay bit for bit those of the two modules.
TEST(SequentialTest, FuseBatchNormThenRelu) {
  ManualSeed(14);
  auto make = [] {
    return Sequential({std::make_shared<BatchNorm2d>(3),
                       std::make_shared<ReLU>(),
                       std::make_shared<Conv2d>(3, 2, 1)});
  };
  Sequential plain = make(), fused = make();
  ASSERT_TRUE(fused.LoadStateDict(plain.StateDict()).ok());
  fused.Fuse();
  const Tensor x = Normal({2, 3, 4, 4}, 0, 1);
  for (const bool training : {true, false}) {
    plain.Train(training);
    fused.Train(training);
    autograd::Variable xp(x, true), xf(x, true);
    autograd::Variable yp = plain(xp), yf = fused(xf);
    EXPECT_EQ(yf.data().ToVector(), yp.data().ToVector());
    Sum(yp * yp).Backward();
    Sum(yf * yf).Backward();
    EXPECT_EQ(xf.grad().ToVector(), xp.grad().ToVector());
    const auto pp = plain.Parameters(), pf = fused.Parameters();
    for (size_t i = 0; i < pp.size(); ++i) {
      EXPECT_EQ(pf[i].grad().ToVector(), pp[i].grad().ToVector()) << i;
    }
    plain.ZeroGrad();
    fused.ZeroGrad();
  }
}

// In evaluation without gradients, consecutive convolutions run as one
// chain on oneDNN (bf16 matmuls, a CPU with AVX512-BF16), with the max
// pooling between them on oneDNN too: the values of oneDNN's convolutions
// and dive's pooling one by one, bit for bit (under the measured choice,
// on their own, the 1x1 ones and the first, of 3 channels, run on dive's
// kernels). With gradients, in training, or with a hook on a convolution,
// each runs on its own. Elsewhere the chain never runs and every result is
// the same.
TEST(SequentialTest, EvaluationRunsConsecutiveConvolutionsAsOneChain) {
  ManualSeed(23);
  auto conv1 = std::make_shared<Conv2d>(3, 24, 3, 1, 1);
  auto bn1 = std::make_shared<BatchNorm2d>(24);
  auto conv2 = std::make_shared<Conv2d>(24, 24, 1);
  auto conv3 = std::make_shared<Conv2d>(24, 24, 1);
  auto pool = std::make_shared<MaxPool2d>(3, 2);
  auto conv4 = std::make_shared<Conv2d>(24, 16, 3, 1, 1);
  Sequential block({conv1, bn1, std::make_shared<ReLU>(), conv2,
                    std::make_shared<ReLU>(), conv3, std::make_shared<ReLU>(),
                    pool, conv4});
  AssignValues(bn1->running_var(), std::vector<float>(24, 2.0f));
  block.Fuse();
  block.Eval();
  // The pooling is a stage of the chain, between conv3 and conv4.
  std::vector<ChainedConv> links;
  ASSERT_TRUE(block.AppendToConvChain(&links));
  ASSERT_EQ(links.size(), 5u);
  EXPECT_TRUE(links[3].conv == nullptr && links[3].pool == pool.get());
  EXPECT_EQ(links[4].conv, conv4.get());
  const autograd::Variable x(Normal({3, 3, 20, 20}, 0, 1));
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  const auto one_by_one = [&](ConvLibrary library) {
    const ScopedConvLibrary use(library);
    return block(x).data().ToVector();  // gradients on: no chain
  };
  const std::vector<float> onednn = one_by_one(ConvLibrary::kOneDnn);
  const std::vector<float> measured = one_by_one(ConvLibrary::kAuto);
  const bool chain_runs = ActiveIsa() >= Isa::kAvx512Bf16;
  const autograd::NoGradGuard no_grad;
  EXPECT_EQ(block(x).data().ToVector(), chain_runs ? onednn : measured);
  EXPECT_EQ(Conv2dChainUsesOneDnn(x.shape(),
                                  {conv1->ChainStage(), conv2->ChainStage(),
                                   conv3->ChainStage()}),
            chain_runs);
  int calls = 0;
  autograd::HookHandle hook = conv2->RegisterForwardHook(
      [&calls](Module&, const autograd::Variable&, const autograd::Variable&) {
        ++calls;
        return autograd::Variable();
      });
  EXPECT_EQ(block(x).data().ToVector(), measured);
  EXPECT_EQ(calls, 1);
  hook.Remove();
  EXPECT_EQ(block(x).data().ToVector(), chain_runs ? onednn : measured);
  EXPECT_EQ(calls, 1);
}

TEST(SequentialDeathTest, BadIndexAndNull) {
  Sequential seq({std::make_shared<ReLU>()});
  EXPECT_DEATH(seq.at(1), "Sequential::at\\(1\\) of a Sequential of 1 modules");
  EXPECT_DEATH(Sequential({std::shared_ptr<Module>()}),
               "RegisterModule: '0' is null");
}

}  // namespace
}  // namespace dive::nn
