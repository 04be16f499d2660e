// File: autograd/variable.h
// -----------------------------------------------------------------------------
//
// Reverse-mode automatic differentiation on a dynamic graph.
//
// A `Variable` pairs a `Tensor` of data with a handle to a `GradNode`. Every
// differentiable op (see `autograd/functions.h`) records, in the node of its
// result, the nodes of its inputs and a closure that maps the gradient of the
// result to the gradients of the inputs. `Backward()` sorts the graph
// topologically and runs those closures from the output back to the leaves,
// accumulating into each leaf's `grad()`; the graph is freed afterwards
// unless `retain_graph` is set.
//
// Graph edges hold only nodes, never data: a closure captures exactly the
// tensors its gradient needs, so activations no longer needed are freed as
// soon as the forward pass drops them.
//
// Example:
//
//   Variable w(Tensor::FromVector({1, 2}, {2}), /*requires_grad=*/true);
//   Variable x(Tensor::FromVector({3, 4}, {2}));
//   Variable y = Sum(w * x);                  // 11
//   y.Backward();
//   w.grad();                                 // [3, 4]
//
//   {
//     NoGradGuard no_grad;                    // inference: no graph is built
//     Variable z = w * x;
//   }
//
// Attributing backward work (profilers): every node records the thread's
// current `NodeTag` when its op runs, an opaque label that autograd never
// reads (train/layer_profiler.h sets it to the module whose forward is
// running, so nn stays above autograd). A `BackwardObserver` installed on a
// thread sees each node's execution in that thread's backward passes: the
// node's hooks, its closure and the accumulation of its results into its
// inputs' gradients. Both cost one thread-local read when unused (per op
// recorded, and per backward pass).

#ifndef AUTOGRAD_VARIABLE_H_
#define AUTOGRAD_VARIABLE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/hook_handle.h"
#include "tensor/tensor.h"

namespace dive::autograd {

// Maps the gradient of an op's result to the gradients of its inputs, one per
// input in order; an undefined Tensor means "no gradient for this input".
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad)>;

// Sees the gradient of a variable (`Variable::RegisterHook`) and returns the
// gradient to use instead, or an undefined Tensor to keep it.
using GradHook = std::function<Tensor(const Tensor& grad)>;

// Sees a leaf's accumulated gradient once a backward pass has finished
// adding to it (`Variable::RegisterPostAccumulateGradHook`).
using PostAccumulateGradHook = std::function<void(const Tensor& grad)>;

struct GradNode {
  const char* op = "leaf";
  // The thread's `NodeTag` when the op ran (null for leaves and untagged
  // ops); opaque to autograd.
  const void* tag = nullptr;
  bool requires_grad = false;
  bool released = false;  // backward ran and freed the closure
  Shape shape;            // of the data, to check incoming gradients
  Tensor grad;
  std::vector<std::shared_ptr<GradNode>> inputs;
  BackwardFn backward;  // empty for leaves and freed graphs
  HookList<GradHook> hooks;
  HookList<PostAccumulateGradHook> post_accumulate_hooks;  // leaves only
};

class Variable {
 public:
  // An undefined variable.
  Variable() = default;
  // A leaf. With `requires_grad`, `Backward()` fills its `grad()`.
  explicit Variable(Tensor data, bool requires_grad = false);

  // The result of an op. Records `backward` and the input edges only when
  // gradients are enabled and some input requires a gradient; otherwise the
  // result is a constant and nothing is kept.
  static Variable FromOp(const char* op, Tensor data,
                         const std::vector<Variable>& inputs,
                         BackwardFn backward);

  bool defined() const { return data_.defined(); }
  // The data. Copies of a Variable share its storage, so optimizers and
  // checkpoint loading update parameters in place through it.
  const Tensor& data() const { return data_; }
  const Shape& shape() const { return data_.shape(); }
  int64_t dim(int i) const { return data_.dim(i); }
  int rank() const { return data_.rank(); }
  int64_t numel() const { return data_.numel(); }

  bool requires_grad() const { return node_ && node_->requires_grad; }
  // Only for leaves; shared by all copies of the leaf.
  void set_requires_grad(bool requires_grad);
  bool is_leaf() const {
    return !node_ || (!node_->backward && !node_->released);
  }
  // The accumulated gradient; undefined until a backward pass reaches it.
  const Tensor& grad() const;
  void set_grad(Tensor grad);
  void ZeroGrad();

  // Backpropagates from this scalar (seed 1).
  void Backward(bool retain_graph = false);
  // Backpropagates `grad` (same shape as this variable).
  void Backward(const Tensor& grad, bool retain_graph = false);

  // RegisterHook()
  //
  // PyTorch's `Tensor.register_hook`: `hook` runs in every backward pass that
  // computes this variable's gradient, with that pass's whole gradient (for
  // a leaf, before it is added to `grad()`; for an op's result, before it
  // flows on to the op's inputs), and its result, when defined, replaces the
  // gradient; it must keep the shape. Hooks run in registration order, each
  // on the previous one's result. CHECK-fails unless `requires_grad()`.
  HookHandle RegisterHook(GradHook hook) const;

  // RegisterPostAccumulateGradHook()
  //
  // PyTorch's `Tensor.register_post_accumulate_grad_hook`, for leaves: `hook`
  // runs in every backward pass that gives this leaf a gradient, as soon as
  // that pass is done with the leaf (every op that uses it has run, the
  // `RegisterHook` hooks too), with the accumulated `grad()`, while the
  // pass goes on with the rest of the graph. Data-parallel training starts
  // a gradient's all-reduce there, overlapping it with the rest of the
  // backward pass. Hooks run in registration order; a leaf that gets no
  // gradient in a pass does not run them. CHECK-fails unless a leaf that
  // `requires_grad()`.
  HookHandle RegisterPostAccumulateGradHook(PostAccumulateGradHook hook) const;

  // The same data, cut from the graph.
  Variable Detach() const { return Variable(data_); }
  // The op that produced this variable ("leaf" for leaves).
  const char* op() const { return node_ ? node_->op : "leaf"; }
  const std::shared_ptr<GradNode>& node() const { return node_; }

 private:
  Tensor data_;
  std::shared_ptr<GradNode> node_;
};

// Whether ops record graphs on this thread (true by default).
bool GradEnabled();

// Disables graph recording on this thread while in scope.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// NodeTag: the label that ops recorded on this thread give their nodes
// (`GradNode::tag`), null by default.
const void* NodeTag();
// Sets it and returns the previous one, to restore when the labelled work
// ends (a module's forward hook, for a profiler).
const void* SetNodeTag(const void* tag);

// BackwardObserver
//
// Sees every node a backward pass on the installing thread executes, in
// execution order. `BeforeNode` runs before the node's gradient hooks and
// closure, `AfterNode` once its results have been added to its inputs'
// gradients, so the time between them is the node's own work: a node whose
// input feeds other nodes too (a residual shortcut) is timed apart from
// them. Leaves are not executed and not observed.
class BackwardObserver {
 public:
  virtual ~BackwardObserver() = default;
  virtual void BeforeNode(const GradNode& node) = 0;
  virtual void AfterNode(const GradNode& node) = 0;
};

// Installs `observer` (not owned; null: none) for this thread's backward
// passes and returns the previous one, to restore. A pass reads it once, at
// its start.
BackwardObserver* SetBackwardObserver(BackwardObserver* observer);

}  // namespace dive::autograd

#endif  // AUTOGRAD_VARIABLE_H_
