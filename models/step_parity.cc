#include "models/step_parity.h"

#include <algorithm>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "glog/logging.h"
#include "nn/dropout.h"
#include "optim/adam.h"
#include "optim/sgd.h"
#include "tensor/random.h"

namespace dive::models {
namespace {

void DropoutOff(nn::Module& net) {
  for (const auto& [name, m] : net.NamedModules()) {
    if (dynamic_cast<nn::Dropout*>(m) != nullptr) m->Eval();
  }
}

}  // namespace

ParityCase MakeParityCase(const ModelSpec& spec) {
  ManualSeed(kParitySeed);
  absl::StatusOr<std::shared_ptr<nn::Module>> net =
      spec.make(spec.quick_input_size);
  CHECK(net.ok()) << net.status();
  DropoutOff(**net);
  const int64_t size = spec.quick_input_size;
  std::vector<int64_t> labels(kParityBatch);
  for (int64_t i = 0; i < kParityBatch; ++i) labels[i] = i % 10;
  return {*net, Normal({kParityBatch, 1, size, size}, 0.0f, 1.0f),
          Tensor::FromInt64Vector(labels, {kParityBatch})};
}

std::unique_ptr<optim::Optimizer> MakeParityOptimizer(const std::string& name,
                                                      const nn::Module& net) {
  if (name == "sgd") {
    return std::make_unique<optim::SGD>(
        net.Parameters(),
        optim::SGDOptions{.lr = kParitySgdLr,
                          .momentum = kParityMomentum,
                          .weight_decay = kParityWeightDecay});
  }
  CHECK_EQ(name, "adam") << "no parity optimizer named " << name;
  return std::make_unique<optim::Adam>(
      net.Parameters(),
      optim::AdamOptions{.lr = kParityAdamLr, .eps = kParityAdamEps});
}

std::vector<float> RunParitySteps(const ParityCase& c,
                                  optim::Optimizer& optimizer) {
  std::vector<float> losses;
  for (int step = 0; step < kParitySteps; ++step) {
    optimizer.ZeroGrad();
    autograd::Variable loss = autograd::SoftmaxCrossEntropy(
        (*c.net)(autograd::Variable(c.images)), c.labels);
    losses.push_back(loss.data().item());
    loss.Backward();
    optimizer.Step();
  }
  return losses;
}

std::vector<int64_t> ParitySampleIndices(int64_t numel) {
  const int64_t n = std::min(numel, kParitySamples);
  std::vector<int64_t> indices;
  for (int64_t k = 0; k < n; ++k) {
    indices.push_back(n == 1 ? 0 : k * (numel - 1) / (n - 1));
  }
  return indices;
}

}  // namespace dive::models
