// File: nn/module.h
// -----------------------------------------------------------------------------
//
// `Module` is the base of every layer and model. Following the PyTorch C++
// frontend, a module registers in its constructor
//
//   * parameters: trainable `Variable`s (`RegisterParameter`),
//   * buffers: state that is saved but not trained, such as BatchNorm's
//     running statistics (`RegisterBuffer`),
//   * submodules (`RegisterModule`),
//
// and the base class derives from those registrations the dotted names of
// PyTorch's `state_dict` ("features.0.weight", "bn1.running_mean"), the
// parameter list for optimizers, train/eval switching and a summary.
//
// Every module maps one tensor to one tensor (`Forward`); all the CNNs of the
// book, including Inception, residual and dense blocks, fit that shape.
//
// Example:
//
//   class TwoLayer : public Module {
//    public:
//     TwoLayer() {
//       fc1_ = RegisterModule("fc1", std::make_shared<Linear>(784, 256));
//       fc2_ = RegisterModule("fc2", std::make_shared<Linear>(256, 10));
//     }
//     Variable Forward(const Variable& x) override {
//       return (*fc2_)(Relu((*fc1_)(x)));
//     }
//     std::string Describe() const override { return "TwoLayer"; }
//    private:
//     std::shared_ptr<Linear> fc1_, fc2_;
//   };

#ifndef NN_MODULE_H_
#define NN_MODULE_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "autograd/variable.h"
#include "tensor/tensor.h"

namespace dive::nn {

class Conv2d;
class MaxPool2d;

// A convolution of a chain run as one (nn/conv2d.h TryConvChain), with the
// values it convolves and adds numbered as tensor/conv.h's Conv2dStage
// numbers them (0 the chain's input, k the output of stage k - 1); or, with
// `conv` null, a max pooling of value `input`.
struct ChainedConv {
  const Conv2d* conv;
  int input;
  int residual;
  const MaxPool2d* pool = nullptr;
};

class Module {
 public:
  virtual ~Module() = default;

  virtual autograd::Variable Forward(const autograd::Variable& x) = 0;
  // Calls `Forward`, with the hooks below around it. Always call submodules
  // through this operator (not `Forward` directly) so that hooks and
  // `Summary` see them.
  autograd::Variable operator()(const autograd::Variable& x);

  // ---- Hooks -------------------------------------------------------------------
  // PyTorch's `register_forward_pre_hook` and `register_forward_hook`: each
  // call of `operator()` runs the pre-hooks on the input, then `Forward`,
  // then the hooks on (input, output), each kind in registration order. A
  // hook that returns a defined Variable replaces the input (pre-hook) or
  // the output (hook) for what follows; an undefined one keeps it.
  // `HookHandle::Remove()` takes a hook out. With no hooks registered a call
  // costs one test of an empty list more than `Forward`.
  using ForwardPreHook = std::function<autograd::Variable(
      Module& module, const autograd::Variable& input)>;
  using ForwardHook = std::function<autograd::Variable(
      Module& module, const autograd::Variable& input,
      const autograd::Variable& output)>;
  autograd::HookHandle RegisterForwardPreHook(ForwardPreHook hook);
  autograd::HookHandle RegisterForwardHook(ForwardHook hook);
  // Registers `pre_hook` and `hook` (either may be empty) on this module and
  // on every submodule, each once (`NamedModules()`): how an observer of a
  // whole model, such as `Summary` or train's LayerProfiler, sees every
  // call. The one handle removes them all.
  autograd::HookHandle RegisterForwardHooksOnAll(ForwardPreHook pre_hook,
                                                 ForwardHook hook);
  // Whether a call runs hooks of this module's own.
  bool has_forward_hooks() const {
    return !forward_pre_hooks_.empty() || !forward_hooks_.empty();
  }

  // One line describing this module's own configuration, e.g.
  // "Conv2d(1, 6, kernel=5x5, stride=1, padding=2)".
  virtual std::string Describe() const = 0;

  // ---- Introspection ---------------------------------------------------------
  // All parameters of this module and its submodules, in registration order:
  // a module's own parameters first, then each child's. A submodule
  // registered under several names is visited once, under its first name.
  std::vector<autograd::Variable> Parameters() const;
  std::vector<std::pair<std::string, autograd::Variable>> NamedParameters()
      const;
  std::vector<std::pair<std::string, Tensor>> NamedBuffers() const;
  // This module and every submodule, each once, with its dotted name ("" for
  // this one), parents before children, like PyTorch's named_modules().
  std::vector<std::pair<std::string, Module*>> NamedModules() const;
  // Parameters and buffers by dotted name, like PyTorch's state_dict(). The
  // tensors share storage with the module's; `Clone()` them for a snapshot.
  std::map<std::string, Tensor> StateDict() const;
  // Copies every entry of `state` into the tensor of the same name, in place
  // (`Tensor::CopyFrom`), so every copy of a parameter's `Variable`, such as
  // an optimizer's, sees the new values. Returns InvalidArgument listing all
  // missing keys, unexpected keys and shape or dtype mismatches, e.g.
  //   "LoadStateDict: missing keys [fc.bias]; unexpected keys [fc3.weight];
  //    shape mismatches [fc.weight (expected [10, 84], got [10, 80])]"
  // and then nothing is modified.
  absl::Status LoadStateDict(const std::map<std::string, Tensor>& state);
  int64_t NumParameters() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>&
  children() const {
    return children_;
  }

  // ---- Mode --------------------------------------------------------------------
  // Training mode (the default) or evaluation mode for this module and all
  // submodules; changes the behaviour of Dropout and BatchNorm.
  void Train(bool on = true);
  void Eval() { Train(false); }
  bool is_training() const { return training_; }

  // Freeze()
  //
  // Evaluation mode with the weights taken as constants, for inference, as
  // torch.jit.freeze does: each Conv2d and Linear snapshots the weights its
  // calls use (a Conv2d's with its BatchNorm folded in, after Fuse()) as a
  // frozen tensor (Tensor::Frozen), so that its kernels keep what they
  // derive from them (the GEMM's packed panels, oneDNN's blocked bf16
  // weights) instead of folding, rounding and packing every weight at every
  // call. The results are unfrozen evaluation's within float rounding (a
  // frozen Linear adds its bias after the products instead of before).
  //
  // The snapshot is of the parameters and running statistics at this call:
  // later changes to them are not seen until Freeze() is called again.
  // Thaw() drops it, and so does Train(); LoadStateDict() and Fuse() take
  // it again. Gradients do not reach the parameters of a frozen model.
  void Freeze();
  // Drops the snapshots; the mode stays as it is.
  void Thaw();
  bool is_frozen() const { return frozen_; }

  // Clears the gradient of every parameter (`grad()` becomes undefined).
  void ZeroGrad();

  // Fuse()
  //
  // Lets the model run chains of layers as one pass each, as ONNX Runtime
  // and oneDNN do:
  //
  //   * a ReLU right after a Conv2d or a BatchNorm runs in that layer's
  //     output pass, in both modes: the same values and gradients, bit for
  //     bit, without the ReLU's own pass over memory;
  //   * in evaluation mode, a BatchNorm2d right after a Conv2d is folded
  //     into its weights and bias (nn::Conv2d::FuseWith), and ResNet's
  //     residual add runs in the convolution's output pass too: the unfused
  //     results within float rounding (the folded weights are rounded once
  //     more).
  //
  // The folding reads the current parameters and statistics at each call,
  // so a model fused once goes on training and evaluating. Absorbed modules
  // are not called, so their own hooks do not run. Idempotent.
  //
  // The base recurses into the submodules; containers that know their data
  // flow override it to mark what they fuse (Sequential; ResNet's Residual;
  // GoogLeNet's Inception).
  virtual void Fuse();
  // Whether this module's output has had ReLU applied in its own pass (a
  // Conv2d or BatchNorm that fused one): blocks that apply ReLU themselves
  // call it through CallThenRelu.
  virtual bool AppliesRelu() const { return false; }
  // Appends the convolutions this module's next call amounts to, as stages
  // of a chain (TryConvChain) that compute its output from the chain's last
  // value (numbered chain->size()), and returns true; or returns false, with
  // `chain` in an unspecified state, where the call is not only
  // convolutions with what they absorb, or may not run as a chain (training,
  // hooks). The base returns false; Conv2d, Sequential and ResNet's Residual
  // append theirs in evaluation.
  virtual bool AppendToConvChain(std::vector<ChainedConv>* chain) const {
    return false;
  }

  // DryRun()
  //
  // One forward pass on zeros of `input_shape`, in eval mode without
  // gradients, with every module's own mode restored afterwards (BatchNorm's
  // statistics and Dropout's stream untouched): how an inspector that hooks
  // the model (`Summary`, nn/flops.h) sees one call of every module.
  autograd::Variable DryRun(const Shape& input_shape);

  // A table of every module with its output shape and parameter count for an
  // input of `input_shape`, computed by a `DryRun`, seen through forward
  // hooks on every module (`RegisterForwardHooksOnAll`; so not while another
  // thread runs this model). One line per call of `operator()`, in call
  // order, indented by nesting depth, with the dotted name, `Describe()`, the
  // output shape (after the module's own hooks) and the module's parameter
  // count (its submodules' included); then the total:
  //
  //   Module                                              Output shape  Params
  //   Sequential                                          [1, 10]       7850
  //     0 Flatten(start=1, end=-1)                        [1, 784]      0
  //     1 Linear(784, 10)                                 [1, 10]       7850
  //   Total parameters: 7850
  std::string Summary(const Shape& input_shape);

 protected:
  // Each Register function CHECK-fails on an empty name, a name containing
  // '.', or a name already used by a parameter, buffer or submodule of this
  // module.
  //
  // Registers a trainable float32 parameter initialized to `init` (its
  // storage is kept); returns it.
  autograd::Variable RegisterParameter(const std::string& name, Tensor init);
  // Called on each module by Freeze() (true), by Thaw() and Train() on a
  // frozen model (false), and by LoadStateDict() and Fuse() on a frozen one
  // (true again):
  // Conv2d and Linear take or drop their snapshots. The base has none.
  virtual void OnFreeze(bool frozen) {}
  // Registers a buffer; the returned handle shares storage with the module's.
  Tensor RegisterBuffer(const std::string& name, Tensor init);
  // Registers a submodule (not null); returns it with its own type.
  template <typename M>
  std::shared_ptr<M> RegisterModule(const std::string& name,
                                    std::shared_ptr<M> module) {
    RegisterChild(name, module);
    return module;
  }

 private:
  void RegisterChild(const std::string& name, std::shared_ptr<Module> module);
  // CHECK-fails unless `name` is a new, non-empty name without dots.
  void CheckNewName(const char* what, const std::string& name) const;
  // Calls OnFreeze(true) again on every frozen module (new values).
  void Refreeze();
  bool training_ = true;
  bool frozen_ = false;
  autograd::HookList<ForwardPreHook> forward_pre_hooks_;
  autograd::HookList<ForwardHook> forward_hooks_;
  std::vector<std::pair<std::string, autograd::Variable>> parameters_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

// relu(module(x)), the ReLU in the module's own pass when it fused one
// (Module::AppliesRelu), separately otherwise: how blocks that write
// `Relu((*bn1_)(y))` themselves (ResNet, GoogLeNet) profit from Fuse().
autograd::Variable CallThenRelu(Module& module, const autograd::Variable& x);

}  // namespace dive::nn

#endif  // NN_MODULE_H_
