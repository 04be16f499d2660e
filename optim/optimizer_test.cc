#include "optim/optimizer.h"

#include <utility>
#include <vector>

#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "optim/adam.h"
#include "optim/sgd.h"
#include "gtest/gtest.h"
#include "tensor/tensor.h"

namespace dive::optim {
namespace {

// Plain gradient descent that also records what the base class hands it.
class PlainDescent : public Optimizer {
 public:
  explicit PlainDescent(std::vector<autograd::Variable> params, float lr = 0.5f)
      : Optimizer("PlainDescent", std::move(params), lr,
                  /*weight_decay=*/0.0f) {}

  int updates = 0;
  bool grad_enabled_in_update = true;

 protected:
  void Update(const ParamGroup&, float lr, const Tensor& param,
              const Tensor& grad, ParamState& state) override {
    ++updates;
    grad_enabled_in_update = autograd::GradEnabled();
    if (state.buffers.empty()) {
      state.buffers.push_back(Tensor::Zeros(param.shape()));
    }
    state.buffers[0].data()[0] += 1.0f;  // counts updates, like a buffer
    float* w = param.data();
    const float* g = grad.data();
    for (int64_t i = 0; i < param.numel(); ++i) w[i] -= lr * g[i];
  }
  int NumBuffers() const override { return 1; }
};

autograd::Variable Param(std::vector<float> values) {
  const int64_t n = static_cast<int64_t>(values.size());
  return autograd::Variable(Tensor::FromVector(values, {n}),
                            /*requires_grad=*/true);
}

TEST(OptimizerTest, StepUpdatesInPlaceUnderNoGrad) {
  autograd::Variable w = Param({1, 2});
  Tensor storage = w.data();  // the model's view of the same storage
  PlainDescent opt({w});
  w.set_grad(Tensor::FromVector({2, -4}, {2}));
  opt.Step();
  EXPECT_EQ(storage.ToVector(), (std::vector<float>{0, 4}));
  EXPECT_FALSE(opt.grad_enabled_in_update);
  EXPECT_TRUE(autograd::GradEnabled());
}

TEST(OptimizerTest, SkipsParametersWithoutGradient) {
  autograd::Variable a = Param({1});
  autograd::Variable b = Param({1});
  PlainDescent opt({a, b});
  a.set_grad(Tensor::FromVector({1}, {1}));
  opt.Step();
  EXPECT_EQ(opt.updates, 1);
  EXPECT_FLOAT_EQ(a.data().item(), 0.5f);
  EXPECT_FLOAT_EQ(b.data().item(), 1.0f);
  EXPECT_EQ(opt.state(b), nullptr);  // no state until its first update
  ASSERT_NE(opt.state(a), nullptr);
  EXPECT_EQ(opt.state(a)->step, 1);
}

TEST(OptimizerTest, StateIsPerParameterAndSharedByCopies) {
  autograd::Variable a = Param({0});
  autograd::Variable b = Param({0});
  PlainDescent opt({a, b});
  for (int i = 0; i < 3; ++i) {
    a.set_grad(Tensor::FromVector({1}, {1}));
    if (i == 2) b.set_grad(Tensor::FromVector({1}, {1}));
    opt.Step();
  }
  autograd::Variable a_copy = a;
  ASSERT_NE(opt.state(a_copy), nullptr);
  EXPECT_EQ(opt.state(a_copy)->step, 3);
  EXPECT_FLOAT_EQ(opt.state(a_copy)->buffers[0].item(), 3.0f);
  EXPECT_EQ(opt.state(b)->step, 1);
}

TEST(OptimizerTest, ZeroGradClearsEveryGroup) {
  autograd::Variable a = Param({1});
  autograd::Variable b = Param({1});
  PlainDescent opt({a});
  opt.AddParamGroup({{b}, 0.1f});
  a.set_grad(Tensor::FromVector({1}, {1}));
  b.set_grad(Tensor::FromVector({1}, {1}));
  opt.ZeroGrad();
  EXPECT_FALSE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  opt.Step();
  EXPECT_EQ(opt.updates, 0);
}

TEST(OptimizerTest, LearningRatePerGroupAndForAll) {
  autograd::Variable a = Param({1});
  autograd::Variable b = Param({1});
  PlainDescent opt({a}, /*lr=*/0.5f);
  opt.AddParamGroup({{b}, /*lr=*/0.25f});
  ASSERT_EQ(opt.param_groups().size(), 2u);
  EXPECT_FLOAT_EQ(opt.lr(), 0.5f);
  a.set_grad(Tensor::FromVector({1}, {1}));
  b.set_grad(Tensor::FromVector({1}, {1}));
  opt.Step();
  EXPECT_FLOAT_EQ(a.data().item(), 0.5f);
  EXPECT_FLOAT_EQ(b.data().item(), 0.75f);

  opt.set_lr(0.125f);
  EXPECT_FLOAT_EQ(opt.param_groups()[0].lr, 0.125f);
  EXPECT_FLOAT_EQ(opt.param_groups()[1].lr, 0.125f);
  opt.param_groups()[1].lr = 0.0f;
  opt.Step();
  EXPECT_FLOAT_EQ(a.data().item(), 0.375f);
  EXPECT_FLOAT_EQ(b.data().item(), 0.75f);
}

TEST(OptimizerTest, StridedGradientIsRead) {
  autograd::Variable w = Param({0, 0});
  PlainDescent opt({w}, /*lr=*/1.0f);
  // Column 0 of [[1, 2], [3, 4]]: a non-contiguous view.
  w.set_grad(Tensor::FromVector({1, 2, 3, 4}, {2, 2}).Select(1, 0));
  opt.Step();
  EXPECT_EQ(w.data().ToVector(), (std::vector<float>{-1, -3}));
}

TEST(OptimizerTest, StateDictNamesParametersByPositionAndCopies) {
  autograd::Variable a = Param({0, 0});
  autograd::Variable b = Param({0});
  PlainDescent opt({a, b});
  b.set_grad(Tensor::FromVector({1}, {1}));
  opt.Step();
  opt.Step();
  std::map<std::string, Tensor> state = opt.StateDict();
  ASSERT_EQ(state.size(), 2u);  // a was never updated
  EXPECT_EQ(state.at("1.step").ToInt64Vector(), (std::vector<int64_t>{2}));
  EXPECT_EQ(state.at("1.0").ToVector(), (std::vector<float>{2}));
  state.at("1.0").data()[0] = 7;  // a copy: the optimizer's is unchanged
  EXPECT_FLOAT_EQ(opt.state(b)->buffers[0].item(), 2.0f);

  PlainDescent fresh({Param({0, 0}), Param({0})});
  ASSERT_TRUE(fresh.LoadStateDict(state).ok());
  const autograd::Variable& fb = fresh.param_groups()[0].params[1];
  ASSERT_NE(fresh.state(fb), nullptr);
  EXPECT_EQ(fresh.state(fb)->step, 2);
  EXPECT_FLOAT_EQ(fresh.state(fb)->buffers[0].item(), 7.0f);
}

TEST(OptimizerTest, LoadStateDictRefusesWhatDoesNotFitAndChangesNothing) {
  autograd::Variable a = Param({0, 0});
  PlainDescent opt({a});
  a.set_grad(Tensor::FromVector({1, 1}, {2}));
  opt.Step();
  const std::map<std::string, Tensor> good = opt.StateDict();
  const auto with = [&](const std::string& key, Tensor t) {
    std::map<std::string, Tensor> s = good;
    s[key] = t;
    return s;
  };
  const auto without = [&](const std::string& key) {
    std::map<std::string, Tensor> s = good;
    s.erase(key);
    return s;
  };
  const struct {
    std::map<std::string, Tensor> state;
    const char* message;
  } cases[] = {
      {with("1.step", Tensor::FromInt64Vector({1}, {1})),
       "'1.step': not a key of an optimizer over 1 parameters"},
      {with("x", Tensor::Zeros({1})), "'x': not a key"},
      {with("0.1", Tensor::Zeros({2})), "keeps 1 buffers per parameter"},
      {with("0.0", Tensor::Zeros({3})), "is float32 [3]; the parameter is "
                                        "float32 [2]"},
      {with("0.step", Tensor::FromInt64Vector({0}, {1})), "int64 >= 1"},
      {with("0.step", Tensor::Zeros({1})), "int64 >= 1"},
      {without("0.step"), "'0.step': missing"},
      {without("0.0"), "'0.0': missing"},
  };
  for (const auto& c : cases) {
    const absl::Status s = opt.LoadStateDict(c.state);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(c.message));
  }
  EXPECT_EQ(opt.state(a)->step, 1);
  EXPECT_EQ(opt.state(a)->buffers[0].ToVector(), (std::vector<float>{1, 0}));
}

// Two steps, the state saved and loaded into a new optimizer over copies of
// the weights, two more steps: bit for bit the four uninterrupted steps.
TEST(OptimizerTest, ResumingFromTheStateDictIsExact) {
  const auto make =
      [](int kind,
         std::vector<autograd::Variable> p) -> std::unique_ptr<Optimizer> {
    if (kind == 0) {
      return std::make_unique<SGD>(p, SGDOptions{0.1f, 0.9f, 0.0f, 1e-2f,
                                                 /*nesterov=*/true});
    }
    if (kind == 1) return std::make_unique<Adam>(p, AdamOptions{});
    return std::make_unique<AdamW>(p, AdamWOptions{});
  };
  const auto grad = [](int step) {
    return Tensor::FromVector({0.5f - step, 0.25f * step, 1.0f}, {3});
  };
  for (int kind = 0; kind < 3; ++kind) {
    autograd::Variable w = Param({1, -2, 3});
    std::unique_ptr<Optimizer> straight = make(kind, {w});
    autograd::Variable v = Param({1, -2, 3});
    std::unique_ptr<Optimizer> first = make(kind, {v});
    for (int step = 0; step < 4; ++step) {
      w.set_grad(grad(step));
      straight->Step();
      if (step < 2) {
        v.set_grad(grad(step));
        first->Step();
      }
    }
    autograd::Variable resumed = Param(v.data().ToVector());
    std::unique_ptr<Optimizer> second = make(kind, {resumed});
    ASSERT_TRUE(second->LoadStateDict(first->StateDict()).ok());
    for (int step = 2; step < 4; ++step) {
      resumed.set_grad(grad(step));
      second->Step();
    }
    EXPECT_EQ(resumed.data().ToVector(), w.data().ToVector())
        << straight->name();
  }
}

TEST(OptimizerDeathTest, EmptyParameterList) {
  EXPECT_DEATH(PlainDescent({}), "PlainDescent: empty parameter list");
}

TEST(OptimizerDeathTest, EmptyGroup) {
  PlainDescent opt({Param({1})});
  EXPECT_DEATH(opt.AddParamGroup({{}, 0.1f}),
               "PlainDescent: empty parameter list");
}

TEST(OptimizerDeathTest, ParameterTwice) {
  autograd::Variable a = Param({1});
  PlainDescent opt({a});
  EXPECT_DEATH(opt.AddParamGroup({{a}, 0.1f}), "appears more than once");
  EXPECT_DEATH(PlainDescent({a, a}), "appears more than once");
}

TEST(OptimizerDeathTest, UndefinedParameter) {
  EXPECT_DEATH(PlainDescent({autograd::Variable()}), "is undefined");
}

TEST(OptimizerDeathTest, NegativeLearningRate) {
  EXPECT_DEATH(PlainDescent({Param({1})}, -1.0f), "negative learning rate");
}

}  // namespace
}  // namespace dive::optim
