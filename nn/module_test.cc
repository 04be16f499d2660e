#include "nn/module.h"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "autograd/functions.h"
#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nn/activation.h"
#include "nn/batch_norm.h"
#include "nn/conv2d.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/pool.h"
#include "nn/sequential.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::nn {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

std::vector<std::string> Names(const Module& m) {
  std::vector<std::string> names;
  for (const auto& [name, param] : m.NamedParameters()) names.push_back(name);
  return names;
}

// A small CNN with a "features" Sequential, a BatchNorm and a head.
class Net : public Module {
 public:
  Net() {
    features_ = RegisterModule(
        "features",
        std::make_shared<Sequential>(
            std::initializer_list<std::shared_ptr<Module>>{
                std::make_shared<Conv2d>(1, 2, 3, /*stride=*/1, /*padding=*/1),
                std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2)}));
    bn1_ = RegisterModule("bn1", std::make_shared<BatchNorm2d>(2));
    flatten_ = RegisterModule("flatten", std::make_shared<Flatten>());
    fc_ = RegisterModule("fc", std::make_shared<Linear>(8, 3));
  }
  autograd::Variable Forward(const autograd::Variable& x) override {
    return (*fc_)((*flatten_)((*bn1_)((*features_)(x))));
  }
  std::string Describe() const override { return "Net"; }

  std::shared_ptr<Sequential> features_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<Flatten> flatten_;
  std::shared_ptr<Linear> fc_;
};

// Exposes the registration functions to tests.
class Probe : public Module {
 public:
  autograd::Variable Forward(const autograd::Variable& x) override { return x; }
  std::string Describe() const override { return "Probe"; }
  using Module::RegisterBuffer;
  using Module::RegisterModule;
  using Module::RegisterParameter;
};

TEST(ModuleTest, SequentialParametersHaveIndexNames) {
  Sequential seq({std::make_shared<Linear>(3, 4), std::make_shared<ReLU>(),
                  std::make_shared<Linear>(4, 2)});
  EXPECT_THAT(Names(seq),
              ElementsAre("0.weight", "0.bias", "2.weight", "2.bias"));
  EXPECT_EQ(seq.Parameters().size(), 4u);
  EXPECT_EQ(seq.NumParameters(), 3 * 4 + 4 + 4 * 2 + 2);
}

TEST(ModuleTest, NestedNamesAreDotted) {
  Net net;
  EXPECT_THAT(Names(net),
              ElementsAre("features.0.weight", "features.0.bias", "bn1.weight",
                          "bn1.bias", "fc.weight", "fc.bias"));
  std::vector<std::string> buffers;
  for (const auto& [name, buffer] : net.NamedBuffers()) buffers.push_back(name);
  EXPECT_THAT(buffers, ElementsAre("bn1.running_mean", "bn1.running_var",
                                   "bn1.num_batches_tracked"));
}

TEST(ModuleTest, ParametersShareStorageWithTheLayers) {
  Net net;
  const std::vector<autograd::Variable> params = net.Parameters();
  EXPECT_TRUE(params[0].data().SharesStorage(
      net.features_->at(0)->Parameters()[0].data()));
  EXPECT_TRUE(params[4].data().SharesStorage(net.fc_->weight().data()));
}

TEST(ModuleTest, StateDictHoldsParametersAndBuffers) {
  Net net;
  const std::map<std::string, Tensor> state = net.StateDict();
  std::vector<std::string> keys;
  for (const auto& [key, tensor] : state) keys.push_back(key);
  EXPECT_THAT(keys, ElementsAre("bn1.bias", "bn1.num_batches_tracked",
                                "bn1.running_mean", "bn1.running_var",
                                "bn1.weight", "fc.bias", "fc.weight",
                                "features.0.bias", "features.0.weight"));
  EXPECT_EQ(state.at("fc.weight").shape(), Shape({3, 8}));
  EXPECT_EQ(state.at("bn1.num_batches_tracked").dtype(), DType::kInt64);
  EXPECT_TRUE(
      state.at("bn1.running_var").SharesStorage(net.bn1_->running_var()));
}

TEST(ModuleTest, LoadStateDictRoundTrip) {
  ManualSeed(1);
  Net source;
  source(autograd::Variable(
      Normal({4, 1, 4, 4}, 0, 1)));  // moves the BN statistics
  ManualSeed(2);
  Net target;
  // Copies of the parameter handles, as an optimizer would hold them.
  const std::vector<autograd::Variable> held = target.Parameters();
  const Tensor running_mean = target.bn1_->running_mean();

  ASSERT_TRUE(target.LoadStateDict(source.StateDict()).ok());
  const std::map<std::string, Tensor> want = source.StateDict();
  for (const auto& [key, tensor] : target.StateDict()) {
    if (tensor.dtype() == DType::kInt64) {
      EXPECT_EQ(tensor.ToInt64Vector(), want.at(key).ToInt64Vector()) << key;
    } else {
      EXPECT_EQ(tensor.ToVector(), want.at(key).ToVector()) << key;
      EXPECT_FALSE(tensor.SharesStorage(want.at(key))) << key;
    }
  }
  EXPECT_EQ(target.bn1_->num_batches_tracked(), 1);
  // Loading wrote into the existing storage.
  EXPECT_EQ(held[4].data().ToVector(), source.fc_->weight().data().ToVector());
  EXPECT_EQ(running_mean.ToVector(), source.bn1_->running_mean().ToVector());
}

TEST(ModuleTest, LoadStateDictListsEveryProblemAndChangesNothing) {
  Sequential seq({std::make_shared<Linear>(3, 4), std::make_shared<ReLU>(),
                  std::make_shared<Linear>(4, 2),
                  std::make_shared<BatchNorm1d>(2)});
  const std::vector<float> before = seq.StateDict().at("0.weight").ToVector();
  std::map<std::string, Tensor> state;
  for (const auto& [key, tensor] : seq.StateDict()) {
    state[key] = tensor.Clone();
  }
  state["0.weight"] = Tensor::Zeros({4, 3});  // valid, must not be copied
  state.erase("0.bias");
  state.erase("3.running_var");
  state["5.weight"] = Tensor::Zeros({1});
  state["2.weight"] = Tensor::Zeros({2, 5});
  state["3.num_batches_tracked"] = Tensor::Scalar(0);

  const absl::Status s = seq.LoadStateDict(state);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(s.message());
  EXPECT_THAT(msg, HasSubstr("missing keys [0.bias, 3.running_var]"));
  EXPECT_THAT(msg, HasSubstr("unexpected keys [5.weight]"));
  EXPECT_THAT(
      msg,
      HasSubstr("shape mismatches [2.weight (expected [2, 4], got [2, 5])]"));
  EXPECT_THAT(msg, HasSubstr("dtype mismatches [3.num_batches_tracked "
                             "(expected int64, got float32)]"));
  EXPECT_EQ(seq.StateDict().at("0.weight").ToVector(), before);
}

TEST(ModuleTest, TrainAndEvalReachEverySubmodule) {
  Net net;
  EXPECT_TRUE(net.is_training());
  net.Eval();
  EXPECT_FALSE(net.is_training());
  EXPECT_FALSE(net.features_->is_training());
  EXPECT_FALSE(net.features_->at(2)->is_training());
  EXPECT_FALSE(net.bn1_->is_training());
  net.Train();
  EXPECT_TRUE(net.features_->at(0)->is_training());
  EXPECT_TRUE(net.bn1_->is_training());
}

TEST(ModuleTest, ZeroGradClearsEveryParameter) {
  Net net;
  autograd::Variable loss =
      Sum(net(autograd::Variable(Normal({2, 1, 4, 4}, 0, 1))));
  loss.Backward();
  for (const autograd::Variable& p : net.Parameters())
    EXPECT_TRUE(p.grad().defined());
  net.ZeroGrad();
  for (const autograd::Variable& p : net.Parameters())
    EXPECT_FALSE(p.grad().defined());
}

TEST(ModuleTest, NumParameters) {
  EXPECT_EQ(Linear(784, 256).NumParameters(), 200960);
  EXPECT_EQ(Conv2d(1, 6, 5).NumParameters(), 156);
  EXPECT_EQ(BatchNorm2d(6).NumParameters(), 12);  // buffers do not count
  EXPECT_EQ(Net().NumParameters(), 20 + 4 + 27);
}

TEST(ModuleTest, SharedSubmoduleIsCountedOnce) {
  auto fc = std::make_shared<Linear>(3, 3);
  Sequential seq({fc, std::make_shared<ReLU>(), fc});
  EXPECT_THAT(Names(seq), ElementsAre("0.weight", "0.bias"));
  EXPECT_EQ(seq.NumParameters(), 12);
}

TEST(ModuleTest, SummaryListsEveryCallWithItsOutputShape) {
  Net net;
  const std::string summary = net.Summary({2, 1, 4, 4});
  EXPECT_THAT(summary, HasSubstr("Net"));
  EXPECT_THAT(summary,
              HasSubstr("features.0 Conv2d(1, 2, kernel=3x3, stride=1, "
                        "padding=1)"));
  EXPECT_THAT(summary, HasSubstr("[2, 2, 4, 4]"));  // conv, relu
  EXPECT_THAT(summary, HasSubstr("features.2 MaxPool2d"));
  EXPECT_THAT(summary, HasSubstr("[2, 2, 2, 2]"));  // pool, bn
  EXPECT_THAT(summary, HasSubstr("bn1 BatchNorm2d(2"));
  EXPECT_THAT(summary, HasSubstr("[2, 8]"));  // flatten
  EXPECT_THAT(summary, HasSubstr("fc Linear(8, 3)"));
  EXPECT_THAT(summary, HasSubstr("[2, 3]"));
  EXPECT_THAT(summary, HasSubstr("Total parameters: 51"));
  // Children are indented below their parent.
  EXPECT_THAT(summary, HasSubstr("\n    features.0 Conv2d"));
  // Evaluation mode without gradients: statistics untouched, mode restored.
  EXPECT_EQ(net.bn1_->num_batches_tracked(), 0);
  EXPECT_TRUE(net.is_training());
  EXPECT_TRUE(net.bn1_->is_training());
  EXPECT_THAT(net.Summary({1, 1, 4, 4}), HasSubstr("[1, 3]"));
}

// The whole table, as the thread-local recorder that preceded the hooks
// printed it.
TEST(ModuleTest, SummaryTable) {
  Net net;
  EXPECT_EQ(
      net.Summary({2, 1, 4, 4}),
      "Module                                                        "
      "Output shape  Params\n"
      "Net                                                           "
      "[2, 3]        51\n"
      "  features Sequential                                         "
      "[2, 2, 2, 2]  20\n"
      "    features.0 Conv2d(1, 2, kernel=3x3, stride=1, padding=1)  "
      "[2, 2, 4, 4]  20\n"
      "    features.1 ReLU                                           "
      "[2, 2, 4, 4]  0\n"
      "    features.2 MaxPool2d(kernel=2x2, stride=2, padding=0)     "
      "[2, 2, 2, 2]  0\n"
      "  bn1 BatchNorm2d(2, eps=1e-05, momentum=0.1)                 "
      "[2, 2, 2, 2]  4\n"
      "  flatten Flatten(start=1, end=-1)                            "
      "[2, 8]        0\n"
      "  fc Linear(8, 3)                                             "
      "[2, 3]        27\n"
      "Total parameters: 51\n");
}

TEST(ModuleTest, SummaryRestoresMixedModes) {
  Net net;
  net.bn1_->Eval();
  net.Summary({2, 1, 4, 4});
  EXPECT_TRUE(net.is_training());
  EXPECT_FALSE(net.bn1_->is_training());
}

TEST(ModuleDeathTest, DuplicateName) {
  Probe probe;
  probe.RegisterParameter("w", Tensor::Zeros({2}));
  EXPECT_DEATH(probe.RegisterBuffer("w", Tensor::Zeros({2})),
               "RegisterBuffer: name 'w' is already registered");
  EXPECT_DEATH(probe.RegisterModule("w", std::make_shared<ReLU>()),
               "RegisterModule: name 'w' is already registered");
}

TEST(ModuleDeathTest, NameWithDot) {
  Probe probe;
  EXPECT_DEATH(probe.RegisterParameter("a.b", Tensor::Zeros({2})),
               "RegisterParameter: name 'a.b' must not contain '.'");
  EXPECT_DEATH(probe.RegisterParameter("", Tensor::Zeros({2})),
               "RegisterParameter: empty name");
}

TEST(ModuleDeathTest, NullModule) {
  Probe probe;
  EXPECT_DEATH(probe.RegisterModule("m", std::shared_ptr<Module>()),
               "RegisterModule: 'm' is null");
}

// ---- Hooks
// --------------------------------------------------------------------

TEST(ModuleHookTest, PreHooksThenForwardThenHooksInRegistrationOrder) {
  ManualSeed(0);
  Net net;
  std::vector<std::string> calls;
  net.RegisterForwardPreHook([&](Module& m, const autograd::Variable&) {
    calls.push_back("pre " + m.Describe());
    return autograd::Variable();
  });
  net.fc_->RegisterForwardHook([&](Module&, const autograd::Variable& in,
                                   const autograd::Variable& out) {
    calls.push_back("fc " + in.shape().ToString() + " -> " +
                    out.shape().ToString());
    return autograd::Variable();
  });
  net.RegisterForwardHook(
      [&](Module&, const autograd::Variable&, const autograd::Variable&) {
        calls.push_back("post 1");
        return autograd::Variable();
      });
  net.RegisterForwardHook(
      [&](Module&, const autograd::Variable&, const autograd::Variable&) {
        calls.push_back("post 2");
        return autograd::Variable();
      });
  net(autograd::Variable(Normal({2, 1, 4, 4}, 0, 1)));
  EXPECT_THAT(
      calls, ElementsAre("pre Net", "fc [2, 8] -> [2, 3]", "post 1", "post 2"));
}

TEST(ModuleHookTest, HooksThatReturnNothingLeaveResultsAndGradientsAlone) {
  ManualSeed(0);
  Net plain;
  ManualSeed(0);
  Net hooked;
  for (const auto& [name, p] : hooked.NamedParameters()) {
    p.RegisterHook([](const Tensor&) { return Tensor(); });
  }
  hooked.features_->RegisterForwardHook(
      [](Module&, const autograd::Variable&, const autograd::Variable&) {
        return autograd::Variable();
      });
  const Tensor x = Normal({2, 1, 4, 4}, 0, 1);
  Sum(plain(autograd::Variable(x))).Backward();
  Sum(hooked(autograd::Variable(x))).Backward();
  const auto a = plain.NamedParameters();
  const auto b = hooked.NamedParameters();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].second.grad().ToVector(), b[i].second.grad().ToVector())
        << a[i].first;
  }
}

TEST(ModuleHookTest, ReturnedVariablesReplaceInputAndOutput) {
  Probe identity;
  identity.RegisterForwardPreHook(
      [](Module&, const autograd::Variable& x) { return x * 2.0f; });
  identity.RegisterForwardHook(
      [](Module&, const autograd::Variable&, const autograd::Variable& y) {
        return y * 10.0f;
      });
  autograd::Variable x(Tensor::FromVector({1, 2}, {2}), true);
  autograd::Variable y = identity(x);
  EXPECT_EQ(y.data().ToVector(), (std::vector<float>{20, 40}));
  Sum(y).Backward();  // the replacements are part of the graph
  EXPECT_EQ(x.grad().ToVector(), (std::vector<float>{20, 20}));
}

TEST(ModuleHookTest, GradientHookOnAParameterSeesItsGradient) {
  ManualSeed(0);
  Net net;
  Tensor seen;
  net.fc_->NamedParameters()[0].second.RegisterHook([&](const Tensor& g) {
    seen = g.Clone();
    return Tensor();
  });
  Sum(net(autograd::Variable(Normal({2, 1, 4, 4}, 0, 1)))).Backward();
  ASSERT_TRUE(seen.defined());
  EXPECT_EQ(seen.ToVector(),
            net.fc_->NamedParameters()[0].second.grad().ToVector());
}

TEST(ModuleHookTest, RemovedHooksNoLongerRunAndAHookMayRemoveItself) {
  Probe m;
  int pre = 0, post = 0;
  autograd::HookHandle pre_handle =
      m.RegisterForwardPreHook([&](Module&, const autograd::Variable&) {
        ++pre;
        return autograd::Variable();
      });
  autograd::HookHandle self;
  self = m.RegisterForwardHook(
      [&](Module&, const autograd::Variable&, const autograd::Variable&) {
        ++post;
        self.Remove();
        return autograd::Variable();
      });
  const autograd::Variable x(Tensor::FromVector({1}, {1}));
  m(x);
  pre_handle.Remove();
  m(x);
  m(x);
  EXPECT_EQ(pre, 1);
  EXPECT_EQ(post, 1);
}

TEST(ModuleHookTest, HooksOnAllSeeEveryCallAndGoWithOneHandle) {
  ManualSeed(0);
  Net net;
  std::vector<std::string> calls;
  auto kind = [](const Module& m) {
    const std::string d = m.Describe();
    return d.substr(0, d.find('('));
  };
  autograd::HookHandle all = net.RegisterForwardHooksOnAll(
      [&](Module& m, const autograd::Variable&) {
        calls.push_back("pre " + kind(m));
        return autograd::Variable();
      },
      [&](Module& m, const autograd::Variable&, const autograd::Variable&) {
        calls.push_back("post " + kind(m));
        return autograd::Variable();
      });
  const autograd::Variable x(Normal({2, 1, 4, 4}, 0, 1));
  net(x);
  EXPECT_THAT(calls,
              ElementsAre("pre Net", "pre Sequential", "pre Conv2d",
                          "post Conv2d", "pre ReLU", "post ReLU",
                          "pre MaxPool2d", "post MaxPool2d", "post Sequential",
                          "pre BatchNorm2d", "post BatchNorm2d", "pre Flatten",
                          "post Flatten", "pre Linear", "post Linear",
                          "post Net"));
  all.Remove();
  net(x);
  EXPECT_EQ(calls.size(), 16u);
}

TEST(ModuleHookTest, SummaryKeepsTheModulesOwnHooksAndLeavesNone) {
  Net net;
  int fc_calls = 0;
  net.fc_->RegisterForwardHook(
      [&](Module&, const autograd::Variable&, const autograd::Variable&) {
        ++fc_calls;
        return autograd::Variable();
      });
  const std::string summary = net.Summary({2, 1, 4, 4});
  EXPECT_EQ(fc_calls, 1);
  EXPECT_EQ(net.Summary({2, 1, 4, 4}), summary);
  net(autograd::Variable(Normal({2, 1, 4, 4}, 0, 1)));
  EXPECT_EQ(fc_calls, 3);
}

}  // namespace
}  // namespace dive::nn
