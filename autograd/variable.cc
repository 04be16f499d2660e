#include "autograd/variable.h"

#include <unordered_map>
#include <utility>

#include "autograd/trace.h"
#include "tensor/ops.h"

namespace dive::autograd {
namespace {

thread_local bool grad_enabled = true;
thread_local const void* node_tag = nullptr;
thread_local BackwardObserver* backward_observer = nullptr;

// Post-order DFS from `root` (iterative: deep networks would overflow the
// stack with recursion). Returns nodes so that every node comes after all
// nodes it depends on. The order owns the nodes: releasing a node's input
// edges during the backward pass must not free nodes still to be visited.
std::vector<std::shared_ptr<GradNode>> TopologicalOrder(
    const std::shared_ptr<GradNode>& root) {
  std::vector<std::shared_ptr<GradNode>> order;
  std::unordered_map<GradNode*, bool> visited;
  std::vector<std::pair<std::shared_ptr<GradNode>, size_t>> stack{{root, 0}};
  visited[root.get()] = true;
  while (!stack.empty()) {
    GradNode* node = stack.back().first.get();
    size_t& next = stack.back().second;
    if (next < node->inputs.size()) {
      const std::shared_ptr<GradNode>& child = node->inputs[next++];
      if (child != nullptr && child->requires_grad && !visited[child.get()]) {
        visited[child.get()] = true;
        stack.emplace_back(child, 0);
      }
    } else {
      order.push_back(std::move(stack.back().first));
      stack.pop_back();
    }
  }
  return order;
}

void Accumulate(GradNode* node, Tensor grad) {
  CHECK(grad.shape() == node->shape)
      << "gradient of shape " << grad.shape() << " for a value of shape "
      << node->shape << " (op " << node->op << ")";
  if (!node->grad.defined()) {
    // A leaf keeps its own copy where the closure returned a tensor that
    // others still hold (e.g. the incoming gradient of an Add); one held by
    // nobody else is taken over, not copied.
    const bool keep = node->backward || grad.OwnsStorageAlone();
    node->grad = keep ? std::move(grad) : grad.Clone();
  } else {
    node->grad = ops::Add(node->grad, grad);
    // A leaf's gradient stays contiguous, as optimizers and users read it;
    // the sum with a channels-last one is channels-last (tensor/ops.h).
    if (!node->backward) node->grad = node->grad.Contiguous();
  }
}

// The node's gradient after its hooks.
Tensor RunHooks(const GradNode& node, Tensor grad) {
  node.hooks.ForEach([&](const GradHook& hook) {
    Tensor replaced = hook(grad);
    if (!replaced.defined()) return;
    CHECK(replaced.shape() == node.shape)
        << "a gradient hook returned shape " << replaced.shape()
        << " for a gradient of shape " << node.shape << " (op " << node.op
        << ")";
    grad = std::move(replaced);
  });
  return grad;
}

// The leaves of one backward pass that have hooks. Their hooks run as soon
// as the pass is done with them, when the last op that uses them has run
// (`uses` counts those still to run), not in their place in the order,
// which for the first input of an op (Mul(w, x)) can be far later.
// Gradients from earlier passes: those of leaves with gradient hooks wait
// aside (the hooks see this pass's gradient alone) and are added back after
// them; those of leaves with only post-accumulate hooks stay in place and
// are remembered, to tell whether the pass added to them (accumulation
// always makes a new tensor).
struct HookedLeaves {
  std::unordered_map<GradNode*, int> uses;
  std::unordered_map<GradNode*, Tensor> aside;
  std::unordered_map<GradNode*, Tensor> in_place;

  explicit HookedLeaves(const std::vector<std::shared_ptr<GradNode>>& order) {
    for (const std::shared_ptr<GradNode>& node : order) {
      if (node->backward) continue;
      if (!node->hooks.empty()) {
        aside.emplace(node.get(), std::exchange(node->grad, Tensor()));
      } else if (!node->post_accumulate_hooks.empty()) {
        in_place.emplace(node.get(), node->grad);
      } else {
        continue;
      }
      uses.emplace(node.get(), 0);
    }
    if (uses.empty()) return;
    for (const std::shared_ptr<GradNode>& node : order) {
      for (const std::shared_ptr<GradNode>& input : node->inputs) {
        if (const auto it = uses.find(input.get()); it != uses.end()) {
          ++it->second;
        }
      }
    }
  }

  // An op that used `input` has run.
  void Used(GradNode* input) {
    if (uses.empty()) return;
    const auto it = uses.find(input);
    if (it != uses.end() && --it->second == 0) {
      uses.erase(it);
      Finish(input);
    }
  }

  // The pass reached `leaf` in its order: if it had no uses (the root),
  // it is done.
  void Reached(GradNode* leaf) {
    if (uses.empty()) return;
    const auto it = uses.find(leaf);
    if (it != uses.end()) {
      uses.erase(it);
      Finish(leaf);
    }
  }

  // The leaf's gradient hooks, then what earlier passes accumulated, then
  // its post-accumulate hooks if this pass gave it a gradient.
  void Finish(GradNode* leaf) {
    bool added = leaf->grad.defined();
    if (const auto it = aside.find(leaf); it != aside.end()) {
      if (leaf->grad.defined()) leaf->grad = RunHooks(*leaf, leaf->grad);
      Tensor before = std::move(it->second);
      if (before.defined()) {
        leaf->grad =
            leaf->grad.defined() ? ops::Add(before, leaf->grad) : before;
      }
    } else if (const auto at = in_place.find(leaf);
               at != in_place.end() && at->second.defined()) {
      added = !leaf->grad.SharesStorage(at->second);
    }
    if (added && !leaf->post_accumulate_hooks.empty()) {
      const Tensor grad = leaf->grad;  // a hook may set_grad
      leaf->post_accumulate_hooks.ForEach(
          [&](const PostAccumulateGradHook& hook) { hook(grad); });
    }
  }
};

}  // namespace

Variable::Variable(Tensor data, bool requires_grad)
    : data_(std::move(data)), node_(std::make_shared<GradNode>()) {
  node_->requires_grad = requires_grad;
  node_->shape = data_.shape();
}

Variable Variable::FromOp(const char* op, Tensor data,
                          const std::vector<Variable>& inputs,
                          BackwardFn backward) {
  Variable out;
  out.data_ = std::move(data);
  if (Tracing()) {
    std::vector<Tensor> traced_inputs;
    traced_inputs.reserve(inputs.size());
    for (const Variable& v : inputs) traced_inputs.push_back(v.data());
    RecordTracedOp(op, std::move(traced_inputs), out.data_);
  }
  if (!grad_enabled) return out;
  bool any = false;
  for (const Variable& v : inputs) any = any || v.requires_grad();
  if (!any) return out;
  out.node_ = std::make_shared<GradNode>();
  out.node_->op = op;
  out.node_->tag = node_tag;
  out.node_->requires_grad = true;
  out.node_->shape = out.data_.shape();
  out.node_->backward = std::move(backward);
  out.node_->inputs.reserve(inputs.size());
  for (const Variable& v : inputs) {
    out.node_->inputs.push_back(v.requires_grad() ? v.node_ : nullptr);
  }
  return out;
}

void Variable::set_requires_grad(bool requires_grad) {
  CHECK(is_leaf()) << "set_requires_grad on the result of op " << op()
                   << "; use Detach() to make a new leaf";
  if (!node_) {
    node_ = std::make_shared<GradNode>();
    node_->shape = shape();
  }
  node_->requires_grad = requires_grad;
}

const Tensor& Variable::grad() const {
  static const Tensor* const kUndefined = new Tensor();
  return node_ ? node_->grad : *kUndefined;
}

void Variable::set_grad(Tensor grad) {
  CHECK(node_ != nullptr) << "set_grad on a variable outside any graph";
  CHECK(!grad.defined() || grad.shape() == shape())
      << "set_grad: gradient of shape " << grad.shape() << " for variable of "
      << "shape " << shape();
  node_->grad = std::move(grad);
}

HookHandle Variable::RegisterHook(GradHook hook) const {
  CHECK(requires_grad()) << "RegisterHook on a variable that does not "
                         << "require grad (op " << op() << ")";
  return node_->hooks.Add(std::move(hook));
}

HookHandle Variable::RegisterPostAccumulateGradHook(
    PostAccumulateGradHook hook) const {
  CHECK(requires_grad() && is_leaf())
      << "RegisterPostAccumulateGradHook needs a leaf that requires grad (op "
      << op() << (requires_grad() ? "" : ", requires_grad false") << ")";
  return node_->post_accumulate_hooks.Add(std::move(hook));
}

void Variable::ZeroGrad() {
  if (node_) node_->grad = Tensor();
}

void Variable::Backward(bool retain_graph) {
  CHECK_EQ(numel(), 1) << "Backward() without a gradient needs a scalar, got "
                       << "shape " << shape()
                       << "; pass the output gradient explicitly";
  Backward(Tensor::Ones(shape()), retain_graph);
}

void Variable::Backward(const Tensor& grad, bool retain_graph) {
  CHECK(requires_grad()) << "Backward() on a variable that does not require "
                         << "grad (op " << op() << ")";
  CHECK(grad.shape() == shape())
      << "Backward: gradient of shape " << grad.shape() << " for output of "
      << "shape " << shape();
  const std::vector<std::shared_ptr<GradNode>> order = TopologicalOrder(node_);
  HookedLeaves hooked(order);
  Accumulate(node_.get(), grad);
  BackwardObserver* const observer = backward_observer;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    GradNode* node = it->get();
    CHECK(!node->released)
        << "Backward through the graph a second time (op " << node->op
        << "); pass retain_graph=true to the first Backward()";
    if (!node->backward) {  // a leaf: its grad stays.
      hooked.Reached(node);
      continue;
    }
    CHECK(node->grad.defined()) << "internal: no gradient reached " << node->op;
    if (observer != nullptr) observer->BeforeNode(*node);
    if (!node->hooks.empty()) node->grad = RunHooks(*node, node->grad);
    std::vector<Tensor> grads = node->backward(node->grad);
    CHECK_EQ(grads.size(), node->inputs.size())
        << "backward of " << node->op << " returned " << grads.size()
        << " gradients for " << node->inputs.size() << " inputs";
    for (size_t i = 0; i < grads.size(); ++i) {
      GradNode* input = node->inputs[i].get();
      if (input == nullptr || !grads[i].defined()) continue;
      Accumulate(input, std::move(grads[i]));
    }
    grads.clear();  // freed inside the observed span
    if (observer != nullptr) observer->AfterNode(*node);
    // Outside the observed span: a leaf's hooks are not the node's work.
    for (const std::shared_ptr<GradNode>& input : node->inputs) {
      hooked.Used(input.get());
    }
    node->grad = Tensor();  // intermediate gradients are not kept.
    if (!retain_graph) {
      node->backward = nullptr;
      node->inputs.clear();
      node->released = true;
    }
  }
}

bool GradEnabled() { return grad_enabled; }

const void* NodeTag() { return node_tag; }

const void* SetNodeTag(const void* tag) { return std::exchange(node_tag, tag); }

BackwardObserver* SetBackwardObserver(BackwardObserver* observer) {
  return std::exchange(backward_observer, observer);
}

NoGradGuard::NoGradGuard() : previous_(grad_enabled) { grad_enabled = false; }

NoGradGuard::~NoGradGuard() { grad_enabled = previous_; }

}  // namespace dive::autograd
