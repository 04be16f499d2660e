#include "models/testing.h"

#include <cmath>
#include <sstream>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "autograd/variable.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "optim/sgd.h"
#include "tensor/random.h"

namespace dive::models {

using ::testing::ElementsAreArray;

std::vector<std::string> ParameterNames(const nn::Module& net) {
  std::vector<std::string> names;
  for (const auto& [name, p] : net.NamedParameters()) names.push_back(name);
  return names;
}

KeyShapes ParseKeyShapes(const char* text) {
  KeyShapes entries;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    entries.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  return entries;
}

KeyShapes StateDictShapes(const nn::Module& net) {
  KeyShapes entries;
  for (const auto& [key, tensor] : net.StateDict()) {
    entries.emplace_back(key, tensor.shape().ToString());
  }
  return entries;
}

std::vector<std::string> ParameterKeys(const KeyShapes& state_dict) {
  std::vector<std::string> keys;
  for (const auto& [key, shape] : state_dict) {
    const bool buffer = absl::EndsWith(key, ".running_mean") ||
                        absl::EndsWith(key, ".running_var") ||
                        absl::EndsWith(key, ".num_batches_tracked");
    if (!buffer) keys.push_back(key);
  }
  return keys;
}

void ExpectStateDictMatchesTwin(const nn::Module& net, const KeyShapes& twin) {
  EXPECT_THAT(StateDictShapes(net), ElementsAreArray(Sorted(twin)));
  EXPECT_THAT(ParameterNames(net), ElementsAreArray(ParameterKeys(twin)));
}

float MaxAbs(const Tensor& t) {
  float m = 0;
  for (float v : t.ToVector()) m = std::max(m, std::abs(v));
  return m;
}

void ExpectUniformBound(const Tensor& t, float bound) {
  const float max_abs = MaxAbs(t);
  EXPECT_LE(max_abs, bound);
  EXPECT_GT(max_abs, 0.95f * bound);
}

Tensor DistinctValues(const Shape& shape, float step) {
  const int64_t n = shape.numel();
  const std::vector<int64_t> order = DefaultGenerator().Permutation(n);
  std::vector<float> values(n);
  for (int64_t i = 0; i < n; ++i) {
    values[i] = step * static_cast<float>(order[i] - n / 2);
  }
  return Tensor::FromVector(values, shape);
}

std::pair<Tensor, Tensor> RandomBatch(int64_t n, int64_t size) {
  CHECK_LE(n, 10) << "RandomBatch: labels 0.." << n - 1 << " for 10 classes";
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) labels[i] = i;
  return {Normal({n, 1, size, size}, 0.0f, 1.0f),
          Tensor::FromInt64Vector(labels, {n})};
}

std::shared_ptr<nn::Module> MakeOrDie(const ModelSpec& spec,
                                      int64_t input_size) {
  absl::StatusOr<std::shared_ptr<nn::Module>> net = spec.make(input_size);
  CHECK(net.ok()) << net.status();
  return *net;
}

std::vector<float> SgdStepLosses(nn::Module& net, const Tensor& x,
                                 const Tensor& y, float lr, int steps) {
  optim::SGD sgd(net.Parameters(), {.lr = lr});
  std::vector<float> losses;
  for (int i = 0; i < steps; ++i) {
    sgd.ZeroGrad();
    autograd::Variable loss =
        autograd::SoftmaxCrossEntropy(net(autograd::Variable(x)), y);
    losses.push_back(loss.data().item());
    loss.Backward();
    sgd.Step();
  }
  return losses;
}

std::pair<float, float> EvalLossBeforeAndAfterSgdSteps(nn::Module& net,
                                                       const Tensor& x,
                                                       const Tensor& y,
                                                       float lr, int steps) {
  auto eval_loss = [&] {
    autograd::NoGradGuard no_grad;
    net.Eval();
    const float loss =
        autograd::SoftmaxCrossEntropy(net(autograd::Variable(x)), y)
            .data()
            .item();
    net.Train();
    return loss;
  };
  const float before = eval_loss();
  optim::SGD sgd(net.Parameters(), {.lr = lr});
  for (int i = 0; i < steps; ++i) {
    sgd.ZeroGrad();
    autograd::SoftmaxCrossEntropy(net(autograd::Variable(x)), y).Backward();
    sgd.Step();
  }
  return {before, eval_loss()};
}

}  // namespace dive::models
