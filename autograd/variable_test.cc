#include "autograd/variable.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "gtest/gtest.h"
#include "tensor/memory_format.h"
#include "tensor/ops.h"

namespace dive::autograd {
namespace {

Tensor Vec(std::vector<float> v) {
  const int64_t n = static_cast<int64_t>(v.size());
  return Tensor::FromVector(v, {n});
}

TEST(Variable, LeafAccumulatesGradientOfScalar) {
  Variable w(Vec({1, 2}), /*requires_grad=*/true);
  Variable x(Vec({3, 4}));
  Variable y = Sum(w * x);
  EXPECT_FLOAT_EQ(y.data().item(), 11.0f);
  y.Backward();
  EXPECT_EQ(w.grad().ToVector(), (std::vector<float>{3, 4}));
  EXPECT_FALSE(x.grad().defined());
}

TEST(Variable, GradientsAccumulateAcrossBackwardCallsUntilZeroGrad) {
  Variable w(Vec({2}), true);
  Sum(w * w).Backward();
  Sum(w * w).Backward();
  EXPECT_FLOAT_EQ(w.grad().item(), 8.0f);  // 2 * (2w)
  w.ZeroGrad();
  EXPECT_FALSE(w.grad().defined());
}

TEST(Variable, ReusedValueReceivesSumOfAllPaths) {
  // y = x*x + x  => dy/dx = 2x + 1
  Variable x(Vec({3}), true);
  Variable y = Sum(x * x + x);
  y.Backward();
  EXPECT_FLOAT_EQ(x.grad().item(), 7.0f);
}

TEST(Variable, DiamondGraphRunsEachNodeOnce) {
  // a = 2x; b = a*a; c = a + b; dc/dx = 2 + 2*a*2 = 2 + 8x
  Variable x(Vec({1.5f}), true);
  Variable a = x * 2.0f;
  Variable c = Sum(a + a * a);
  c.Backward();
  EXPECT_FLOAT_EQ(x.grad().item(), 2.0f + 8.0f * 1.5f);
}

TEST(Variable, NoGradGuardBuildsNoGraph) {
  Variable w(Vec({1, 2}), true);
  {
    NoGradGuard guard;
    EXPECT_FALSE(GradEnabled());
    Variable y = w * 3.0f;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.node(), nullptr);
  }
  EXPECT_TRUE(GradEnabled());
  EXPECT_TRUE((w * 3.0f).requires_grad());
}

TEST(Variable, ConstantsProduceConstants) {
  Variable a(Vec({1})), b(Vec({2}));
  Variable c = a + b;
  EXPECT_FALSE(c.requires_grad());
  EXPECT_TRUE(c.is_leaf());
}

TEST(Variable, DetachCutsTheGraph) {
  Variable x(Vec({2}), true);
  Variable d = (x * x).Detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.data().SharesStorage((x * x).data()) == false);
  Variable y = Sum(d * x);  // d treated as a constant 4
  y.Backward();
  EXPECT_FLOAT_EQ(x.grad().item(), 4.0f);
}

TEST(Variable, CopiesShareGradAndData) {
  Variable w(Vec({1, 2}), true);
  Variable copy = w;
  Sum(w * 2.0f).Backward();
  EXPECT_EQ(copy.grad().ToVector(), (std::vector<float>{2, 2}));
  copy.data().data()[0] = 5.0f;
  EXPECT_FLOAT_EQ(w.data().data()[0], 5.0f);
}

TEST(Variable, LeafTakesOverAGradientNobodyElseHolds) {
  Variable w(Vec({1, 2}), true);
  const void* made = nullptr;
  Variable y =
      Variable::FromOp("fresh", w.data().Clone(), {w}, [&](const Tensor&) {
        Tensor g = Vec({3, 4});
        made = g.raw_data();
        return std::vector<Tensor>{g};
      });
  Sum(y).Backward();
  EXPECT_EQ(w.grad().raw_data(), made);  // not copied
  EXPECT_EQ(w.grad().ToVector(), (std::vector<float>{3, 4}));
}

TEST(Variable, LeafCopiesAGradientSomebodyElseHolds) {
  Variable w(Vec({1, 2}), true);
  Tensor kept = Vec({3, 4});
  Variable y = Variable::FromOp(
      "kept", w.data().Clone(), {w},
      [&](const Tensor&) { return std::vector<Tensor>{kept}; });
  Sum(y).Backward();
  EXPECT_FALSE(w.grad().SharesStorage(kept));
  kept.data()[0] = 100;
  EXPECT_EQ(w.grad().ToVector(), (std::vector<float>{3, 4}));

  // A view of part of a tensor nobody else holds is copied too, so the
  // gradient does not keep the rest alive.
  Variable v(Vec({1, 2}), true);
  Variable z =
      Variable::FromOp("part", v.data().Clone(), {v}, [](const Tensor&) {
        return std::vector<Tensor>{Vec({5, 6, 7}).Slice(0, 1, 3)};
      });
  Sum(z).Backward();
  EXPECT_EQ(v.grad().offset(), 0);
  EXPECT_EQ(v.grad().ToVector(), (std::vector<float>{6, 7}));
}

// Gradients may reach a value channels-last (tensor/memory_format.h); a
// leaf's sum of them is contiguous, as optimizers read it.
TEST(Variable, LeafGradientIsContiguousWhateverTheLayoutsSummed) {
  const Tensor x0 =
      Tensor::FromVector({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {1, 3, 2, 2});
  Variable x(x0.Clone(), true);
  // x through an op whose gradient comes back channels-last.
  Variable last = Variable::FromOp(
      "channels_last", x.data().Clone(), {x}, [](const Tensor& g) {
        return std::vector<Tensor>{
            ToMemoryFormat(g, MemoryFormat::kChannelsLast)};
      });
  // Gradients accumulate across calls: a contiguous one, then the other.
  Sum(x * x).Backward();
  Sum(last).Backward();  // d/dx in all: 2x + 1
  ASSERT_TRUE(x.grad().is_contiguous());
  std::vector<float> want;
  for (float v : x0.ToVector()) want.push_back(2 * v + 1);
  EXPECT_EQ(x.grad().ToVector(), want);
  const float* flat = x.grad().data();
  EXPECT_EQ(std::vector<float>(flat, flat + 12), want);
}

TEST(Variable, RetainGraphAllowsSecondBackward) {
  Variable x(Vec({3}), true);
  Variable y = Sum(x * x);
  y.Backward(/*retain_graph=*/true);
  y.Backward();
  EXPECT_FLOAT_EQ(x.grad().item(), 12.0f);
}

TEST(Variable, NonScalarBackwardTakesExplicitGradient) {
  Variable x(Vec({1, 2, 3}), true);
  Variable y = x * x;
  y.Backward(Vec({1, 0, 2}));
  EXPECT_EQ(x.grad().ToVector(), (std::vector<float>{2, 0, 12}));
}

TEST(Variable, LeafGradIsNotAliasedWithOtherGradients) {
  // Add passes its incoming gradient straight through to both inputs; each
  // leaf must own its gradient so that modifying one leaves the other alone.
  Variable a(Vec({1}), true), b(Vec({1}), true);
  Variable y = a + b;
  y.Backward(Vec({1}));
  a.grad().data()[0] = 100.0f;
  EXPECT_FLOAT_EQ(b.grad().item(), 1.0f);
}

TEST(VariableHook, LeafHookSeesThisPassesWholeGradientBeforeAccumulation) {
  // y = x*x + x reaches x by two paths; the hook sees their sum, once.
  Variable x(Vec({3}), true);
  std::vector<float> seen;
  x.RegisterHook([&](const Tensor& g) {
    seen.push_back(g.item());
    return Tensor();  // keep it
  });
  Sum(x * x + x).Backward();
  Sum(x * x + x).Backward();
  EXPECT_EQ(seen, (std::vector<float>{7, 7}));  // not 14 the second time
  EXPECT_FLOAT_EQ(x.grad().item(), 14.0f);
}

TEST(VariableHook, ReturnedGradientReplacesItAndHooksChainInOrder) {
  Variable x(Vec({1, 2}), true);
  std::vector<std::string> order;
  x.RegisterHook([&](const Tensor& g) {
    order.push_back("double");
    return ops::MulScalar(g, 2.0f);
  });
  x.RegisterHook([&](const Tensor& g) {
    order.push_back("plus one");
    return ops::AddScalar(g, 1.0f);
  });
  Sum(x * Variable(Vec({3, 4}))).Backward();
  EXPECT_EQ(order, (std::vector<std::string>{"double", "plus one"}));
  EXPECT_EQ(x.grad().ToVector(), (std::vector<float>{7, 9}));
}

TEST(VariableHook, HookOnAnIntermediateChangesWhatFlowsToTheInputs) {
  Variable w(Vec({2}), true);
  Variable h = w * w;  // dh/dw = 2w = 4
  std::vector<float> seen;
  h.RegisterHook([&](const Tensor& g) {
    seen.push_back(g.item());
    return ops::MulScalar(g, 10.0f);
  });
  Sum(h * 3.0f).Backward();
  EXPECT_EQ(seen, (std::vector<float>{3}));
  EXPECT_FLOAT_EQ(w.grad().item(), 120.0f);  // 3 * 10 * 4
}

TEST(VariableHook, RemovedHookNoLongerRuns) {
  Variable x(Vec({3}), true);
  int calls = 0;
  HookHandle handle = x.RegisterHook([&](const Tensor&) {
    ++calls;
    return Tensor();
  });
  Sum(x).Backward();
  handle.Remove();
  handle.Remove();  // a second Remove does nothing
  Sum(x).Backward();
  EXPECT_EQ(calls, 1);
  EXPECT_FLOAT_EQ(x.grad().item(), 2.0f);
}

TEST(VariableHookDeathTest, HookMustKeepTheShape) {
  Variable x(Vec({1, 2}), true);
  x.RegisterHook([](const Tensor&) { return Vec({1, 2, 3}); });
  EXPECT_DEATH(Sum(x).Backward(), "a gradient hook returned shape \\[3\\]");
}

TEST(VariableHookDeathTest, NeedsAVariableThatRequiresGrad) {
  Variable x(Vec({1}));
  EXPECT_DEATH(x.RegisterHook([](const Tensor& g) { return g; }),
               "does not require grad");
}

TEST(PostAccumulateGradHook, SeesTheAccumulatedGradientOncePerPass) {
  // y = x*x + x reaches x by two paths: one call per pass, with grad().
  Variable x(Vec({3}), true);
  std::vector<float> seen;
  x.RegisterPostAccumulateGradHook(
      [&](const Tensor& g) { seen.push_back(g.item()); });
  Sum(x * x + x).Backward();
  Sum(x * x + x).Backward();
  EXPECT_EQ(seen, (std::vector<float>{7, 14}));
  EXPECT_FLOAT_EQ(x.grad().item(), 14.0f);
}

TEST(PostAccumulateGradHook, RunsAfterTheGradientHooks) {
  Variable x(Vec({1, 2}), true);
  x.set_grad(Vec({100, 100}));  // from an earlier pass
  x.RegisterHook([](const Tensor& g) { return ops::MulScalar(g, 2.0f); });
  std::vector<float> seen;
  x.RegisterPostAccumulateGradHook([&](const Tensor& g) {
    seen = g.ToVector();
    EXPECT_TRUE(g.SharesStorage(x.grad()));
  });
  Sum(x * Variable(Vec({3, 4}))).Backward();
  EXPECT_EQ(seen, (std::vector<float>{106, 108}));
  EXPECT_EQ(x.grad().ToVector(), (std::vector<float>{106, 108}));
}

TEST(PostAccumulateGradHook, RunsAsSoonAsTheLastUseHasRun) {
  // y = Sum(w2 * Relu(w1 * x)): w2 is Mul's first input, which a plain
  // reverse topological order reaches last; its gradient is complete once
  // the outer Mul has run, before Relu's and the inner Mul's closures.
  Variable x(Vec({1, -2, 3}));
  Variable w1(Vec({0.5f, 0.5f, 0.5f}), true), w2(Vec({1, 2, 3}), true);
  std::vector<std::string> events;
  Variable h = Relu(w1 * x);
  h.RegisterHook([&](const Tensor&) {
    events.push_back("h");  // runs just before Relu's closure
    return Tensor();
  });
  w1.RegisterPostAccumulateGradHook([&](const Tensor&) {
    events.push_back("w1");
  });
  w2.RegisterPostAccumulateGradHook([&](const Tensor&) {
    events.push_back("w2");
  });
  Sum(w2 * h).Backward();
  EXPECT_EQ(events, (std::vector<std::string>{"w2", "h", "w1"}));
  EXPECT_EQ(w1.grad().ToVector(), (std::vector<float>{1, 0, 9}));
}

TEST(PostAccumulateGradHook, NotRunWithoutAGradientFromThePass) {
  // `w` is in the graph, but its op gives it no gradient; its gradient from
  // an earlier pass stays, and the hook does not run.
  Variable w(Vec({1}), true);
  w.set_grad(Vec({5}));
  int calls = 0;
  HookHandle handle =
      w.RegisterPostAccumulateGradHook([&](const Tensor&) { ++calls; });
  Variable blocked = Variable::FromOp(
      "block", w.data().Clone(), {w},
      [](const Tensor&) { return std::vector<Tensor>{Tensor()}; });
  Sum(blocked).Backward();
  EXPECT_EQ(calls, 0);
  EXPECT_FLOAT_EQ(w.grad().item(), 5.0f);
  Sum(w).Backward();
  EXPECT_EQ(calls, 1);
  handle.Remove();
  Sum(w).Backward();
  EXPECT_EQ(calls, 1);
  EXPECT_FLOAT_EQ(w.grad().item(), 7.0f);
}

TEST(PostAccumulateGradHook, OnTheRootLeaf) {
  Variable x(Vec({4}), true);
  std::vector<float> seen;
  x.RegisterPostAccumulateGradHook(
      [&](const Tensor& g) { seen.push_back(g.item()); });
  x.Backward();
  EXPECT_EQ(seen, (std::vector<float>{1}));
}

TEST(PostAccumulateGradHookDeathTest, NeedsALeafThatRequiresGrad) {
  Variable x(Vec({1}), true);
  Variable y = x * x;
  EXPECT_DEATH(y.RegisterPostAccumulateGradHook([](const Tensor&) {}),
               "needs a leaf that requires grad");
  Variable c(Vec({1}));
  EXPECT_DEATH(c.RegisterPostAccumulateGradHook([](const Tensor&) {}),
               "needs a leaf that requires grad");
}

TEST(VariableDeathTest, BackwardOfNonScalarNeedsGradient) {
  Variable x(Vec({1, 2}), true);
  EXPECT_DEATH((x * x).Backward(), "needs a scalar, got shape \\[2\\]");
}

TEST(VariableDeathTest, SecondBackwardWithoutRetainGraph) {
  Variable x(Vec({3}), true);
  Variable y = Sum(x * x);
  y.Backward();
  EXPECT_DEATH(y.Backward(), "a second time");
}

TEST(VariableDeathTest, BackwardWithoutGrad) {
  Variable x(Vec({3}));
  EXPECT_DEATH(Sum(x).Backward(), "does not require grad");
}

TEST(VariableDeathTest, WrongGradientShape) {
  Variable x(Vec({1, 2}), true);
  EXPECT_DEATH((x * x).Backward(Vec({1, 2, 3})),
               "gradient of shape \\[3\\] for output of shape \\[2\\]");
}

// Records, per tag, the nodes a backward pass executed and whether every
// BeforeNode was closed by its AfterNode before the next one.
class CountingObserver : public BackwardObserver {
 public:
  void BeforeNode(const GradNode& node) override {
    EXPECT_EQ(open_, nullptr);
    open_ = &node;
  }
  void AfterNode(const GradNode& node) override {
    EXPECT_EQ(open_, &node);
    open_ = nullptr;
    ops[node.tag].push_back(node.op);
  }
  std::map<const void*, std::vector<std::string>> ops;

 private:
  const GradNode* open_ = nullptr;
};

TEST(Variable, NodesCarryTheTagOfTheirOpAndObserverSeesEachOnce) {
  const int main_path = 0, shortcut = 0;  // two distinct labels
  Variable x(Vec({1, 2}), true);
  Variable h = x * 2.0f;  // untagged; feeds both tagged branches
  Variable a, b;
  {
    const void* previous = SetNodeTag(&main_path);
    a = Exp(h) * 3.0f;
    SetNodeTag(&shortcut);
    b = h * 5.0f;
    EXPECT_EQ(SetNodeTag(previous), &shortcut);
  }
  EXPECT_EQ(NodeTag(), nullptr);
  EXPECT_EQ(a.node()->tag, &main_path);
  EXPECT_EQ(b.node()->tag, &shortcut);
  Variable y = Sum(a + b);
  CountingObserver observer;
  EXPECT_EQ(SetBackwardObserver(&observer), nullptr);
  y.Backward();
  EXPECT_EQ(SetBackwardObserver(nullptr), &observer);
  EXPECT_EQ(observer.ops[&main_path].size(), 2u);  // Mul, Exp
  EXPECT_EQ(observer.ops[&shortcut].size(), 1u);   // Mul
  EXPECT_EQ(observer.ops[nullptr].size(), 3u);     // Sum, Add, the first Mul
  EXPECT_EQ(observer.ops.size(), 3u);
  // The observer leaves the gradient alone: 2 * (3 exp(2x) + 5).
  EXPECT_FLOAT_EQ(x.grad().ToVector()[0], 2 * (3 * std::exp(2.0f) + 5));
}

TEST(Variable, NoObserverNoTagByDefault) {
  EXPECT_EQ(NodeTag(), nullptr);
  EXPECT_EQ(SetBackwardObserver(nullptr), nullptr);
  Variable x(Vec({1}), true);
  Variable y = x * 2.0f;
  EXPECT_EQ(y.node()->tag, nullptr);
}

}  // namespace
}  // namespace dive::autograd
