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
//       (tools/layer_profiler.h: two forward hooks per module and gradient
//       hooks on the outputs, activation statistics every 10th step).

#include <memory>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "benchmark/benchmark.h"
#include "models/lenet/lenet.h"
#include "nn/activation.h"
#include "tensor/random.h"
#include "tools/layer_profiler.h"

namespace dive::bench {
namespace {

enum Way { kDirect, kNoHooks, kNoopHooks };

void BM_ReluCall(benchmark::State& state) {
  nn::ReLU relu;
  std::vector<HookHandle> handles;
  if (state.range(0) == kNoopHooks) {
    handles.push_back(relu.RegisterForwardPreHook(
        [](nn::Module&, const Variable&) { return Variable(); }));
    handles.push_back(
        relu.RegisterForwardHook([](nn::Module&, const Variable&,
                                    const Variable&) { return Variable(); }));
  }
  const Variable x(Normal(Shape{1, 16}, 0, 1), /*requires_grad=*/true);
  for (auto _ : state) {
    Variable y = state.range(0) == kDirect ? relu.Forward(x) : relu(x);
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
  std::unique_ptr<tools::LayerProfiler> profiler;
  if (state.range(0) == 1) {
    profiler = std::make_unique<tools::LayerProfiler>(*model, 10);
  }
  const Variable x(Normal(Shape{256, 1, 28, 28}, 0, 1));
  const tools::TrainState train_state;
  for (auto _ : state) {
    Variable loss = Sum((*model)(x));
    loss.Backward();
    if (profiler != nullptr) {
      profiler->OnAfterBackward(train_state);
      (void)profiler->OnStep(train_state, tools::StepInfo{});
    }
    model->ZeroGrad();
  }
  state.SetItemsProcessed(state.iterations() * 256);
}
BENCHMARK(BM_LeNetStep)->ArgName("profiler")->Arg(0)->Arg(1)->UseRealTime();

}  // namespace
}  // namespace dive::bench
