// What module hooks cost (nn/module.h), PyTorch's register_forward_hook
// semantics: nothing when none is registered.
//
//   bazel run -c opt //bench:hook_benchmark
//
//   BM_ReluCall/<way>: one call of ReLU on 16 floats with gradients, the
//       smallest module call, so any per-call cost shows:
//       direct      ReLU::Forward, no operator() at all
//       no_hooks    operator() with no hook registered
//       noop_hooks  operator() with a pre-hook and a hook that do nothing
//   BM_LeNetStep/<way>: forward and backward of LeNet on 256 images:
//       plain, or with the LayerProfiler of --profile/--dashboard attached
//       (train/layer_profiler.h: two forward hooks per module and gradient
//       hooks on the outputs, activation statistics every 10th step).

#include <memory>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "benchmark/benchmark.h"
#include "models/lenet/lenet.h"
#include "nn/activation.h"
#include "tensor/random.h"
#include "train/layer_profiler.h"

namespace dive::bench {
namespace {

enum Way { kDirect, kNoHooks, kNoopHooks };

void BM_ReluCall(benchmark::State& state) {
  nn::ReLU relu;
  std::vector<autograd::HookHandle> handles;
  if (state.range(0) == kNoopHooks) {
    handles.push_back(
        relu.RegisterForwardPreHook([](nn::Module&, const autograd::Variable&) {
          return autograd::Variable();
        }));
    handles.push_back(relu.RegisterForwardHook(
        [](nn::Module&, const autograd::Variable&, const autograd::Variable&) {
          return autograd::Variable();
        }));
  }
  const autograd::Variable x(Normal(Shape{1, 16}, 0, 1),
                             /*requires_grad=*/true);
  for (auto _ : state) {
    autograd::Variable y =
        state.range(0) == kDirect ? relu.Forward(x) : relu(x);
    benchmark::DoNotOptimize(y);
  }
}
BENCHMARK(BM_ReluCall)
    ->ArgName("way")
    ->Arg(kDirect)
    ->Arg(kNoHooks)
    ->Arg(kNoopHooks);

void BM_LeNetStep(benchmark::State& state) {
  ManualSeed(1);
  std::shared_ptr<nn::Module> model = *models::LeNetSpec().make(28);
  std::unique_ptr<train::LayerProfiler> profiler;
  if (state.range(0) == 1) {
    profiler = std::make_unique<train::LayerProfiler>(*model, 10);
  }
  const autograd::Variable x(Normal(Shape{256, 1, 28, 28}, 0, 1));
  const train::TrainState train_state;
  for (auto _ : state) {
    autograd::Variable loss = Sum((*model)(x));
    loss.Backward();
    if (profiler != nullptr) {
      profiler->OnAfterBackward(train_state);
      (void)profiler->OnStep(train_state, train::StepInfo{});
    }
    model->ZeroGrad();
  }
  state.SetItemsProcessed(state.iterations() * 256);
}
BENCHMARK(BM_LeNetStep)->ArgName("profiler")->Arg(0)->Arg(1)->UseRealTime();

}  // namespace
}  // namespace dive::bench
