#include "optim/optimizer.h"

#include <utility>
#include <vector>

#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "tensor/tensor.h"

namespace dive::optim {
namespace {

// Plain gradient descent that also records what the base class hands it.
class PlainDescent : public Optimizer {
 public:
  explicit PlainDescent(std::vector<Variable> params, float lr = 0.5f)
      : Optimizer("PlainDescent", std::move(params), lr,
                  /*weight_decay=*/0.0f) {}

  int updates = 0;
  bool grad_enabled_in_update = true;

 protected:
  void Update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
              ParamState& state) override {
    ++updates;
    grad_enabled_in_update = GradEnabled();
    if (state.buffers.empty()) state.buffers.push_back(Tensor::Zeros({1}));
    state.buffers[0].data()[0] += 1.0f;  // counts updates, like a buffer
    float* w = param.data();
    const float* g = grad.data();
    for (int64_t i = 0; i < param.numel(); ++i) w[i] -= group.lr * g[i];
  }
};

Variable Param(std::vector<float> values) {
  const int64_t n = static_cast<int64_t>(values.size());
  return Variable(Tensor::FromVector(values, {n}), /*requires_grad=*/true);
}

TEST(OptimizerTest, StepUpdatesInPlaceUnderNoGrad) {
  Variable w = Param({1, 2});
  Tensor storage = w.data();  // the model's view of the same storage
  PlainDescent opt({w});
  w.set_grad(Tensor::FromVector({2, -4}, {2}));
  opt.Step();
  EXPECT_EQ(storage.ToVector(), (std::vector<float>{0, 4}));
  EXPECT_FALSE(opt.grad_enabled_in_update);
  EXPECT_TRUE(GradEnabled());
}

TEST(OptimizerTest, SkipsParametersWithoutGradient) {
  Variable a = Param({1});
  Variable b = Param({1});
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
  Variable a = Param({0});
  Variable b = Param({0});
  PlainDescent opt({a, b});
  for (int i = 0; i < 3; ++i) {
    a.set_grad(Tensor::FromVector({1}, {1}));
    if (i == 2) b.set_grad(Tensor::FromVector({1}, {1}));
    opt.Step();
  }
  Variable a_copy = a;
  ASSERT_NE(opt.state(a_copy), nullptr);
  EXPECT_EQ(opt.state(a_copy)->step, 3);
  EXPECT_FLOAT_EQ(opt.state(a_copy)->buffers[0].item(), 3.0f);
  EXPECT_EQ(opt.state(b)->step, 1);
}

TEST(OptimizerTest, ZeroGradClearsEveryGroup) {
  Variable a = Param({1});
  Variable b = Param({1});
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
  Variable a = Param({1});
  Variable b = Param({1});
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
  Variable w = Param({0, 0});
  PlainDescent opt({w}, /*lr=*/1.0f);
  // Column 0 of [[1, 2], [3, 4]]: a non-contiguous view.
  w.set_grad(Tensor::FromVector({1, 2, 3, 4}, {2, 2}).Select(1, 0));
  opt.Step();
  EXPECT_EQ(w.data().ToVector(), (std::vector<float>{-1, -3}));
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
  Variable a = Param({1});
  PlainDescent opt({a});
  EXPECT_DEATH(opt.AddParamGroup({{a}, 0.1f}), "appears more than once");
  EXPECT_DEATH(PlainDescent({a, a}), "appears more than once");
}

TEST(OptimizerDeathTest, UndefinedParameter) {
  EXPECT_DEATH(PlainDescent({Variable()}), "is undefined");
}

TEST(OptimizerDeathTest, NegativeLearningRate) {
  EXPECT_DEATH(PlainDescent({Param({1})}, -1.0f), "negative learning rate");
}

}  // namespace
}  // namespace dive::optim
