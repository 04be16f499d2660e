// End-to-end: small models built from nn parts, trained with plain SGD on
// synthetic Gaussian blobs, must fit them.

#include <cmath>
#include <memory>
#include <vector>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "nn/activation.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::nn {
namespace {

struct Blobs {
  Tensor x;       // [n, 2]
  Tensor labels;  // int64 [n]
};

// `per_class` points around each center, with standard deviation `stddev`.
Blobs MakeBlobs(const std::vector<std::vector<float>>& centers,
                int per_class, float stddev, uint64_t seed) {
  Generator gen(seed);
  std::vector<float> x;
  std::vector<int64_t> labels;
  for (int i = 0; i < per_class; ++i) {
    for (size_t c = 0; c < centers.size(); ++c) {
      x.push_back(gen.NextNormal(centers[c][0], stddev));
      x.push_back(gen.NextNormal(centers[c][1], stddev));
      labels.push_back(static_cast<int64_t>(c));
    }
  }
  const int64_t n = static_cast<int64_t>(labels.size());
  return {Tensor::FromVector(x, {n, 2}), Tensor::FromInt64Vector(labels, {n})};
}

float Accuracy(Module& model, const Blobs& data) {
  autograd::NoGradGuard no_grad;
  const std::vector<int64_t> predicted =
      ops::Argmax(model(autograd::Variable(data.x)).data(), 1).ToInt64Vector();
  const std::vector<int64_t> labels = data.labels.ToInt64Vector();
  int correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) correct += predicted[i] == labels[i];
  return static_cast<float>(correct) / static_cast<float>(labels.size());
}

// Full-batch gradient descent; returns the last loss.
float Train(Module& model, const Blobs& data, int steps, float lr) {
  float loss_value = 0;
  for (int step = 0; step < steps; ++step) {
    model.ZeroGrad();
    autograd::Variable loss = autograd::SoftmaxCrossEntropy(
        model(autograd::Variable(data.x)), data.labels);
    loss.Backward();
    loss_value = loss.data().item();
    autograd::NoGradGuard no_grad;
    for (const autograd::Variable& p : model.Parameters()) {
      Tensor w = p.data();
      ops::AddInPlace(w, p.grad(), -lr);
    }
  }
  return loss_value;
}

TEST(TrainingTest, MlpFitsThreeBlobs) {
  ManualSeed(0);
  // Three overlapping-at-the-edges classes, 100 points each.
  const Blobs data = MakeBlobs({{0, 2}, {2, -1}, {-2, -1}}, 100, 0.8f, 42);
  Sequential mlp({std::make_shared<Linear>(2, 32), std::make_shared<ReLU>(),
                  std::make_shared<Linear>(32, 3)});
  EXPECT_LT(Accuracy(mlp, data), 0.9f);
  const float first = Train(mlp, data, 1, 0.0f);
  const float last = Train(mlp, data, 300, 0.2f);
  EXPECT_LT(last, 0.5f * first);
  EXPECT_GT(Accuracy(mlp, data), 0.95f);
}

TEST(TrainingTest, SoftmaxRegressionFitsSeparableBlobs) {
  ManualSeed(1);
  const Blobs data = MakeBlobs({{0, 4}, {4, -2}, {-4, -2}}, 50, 0.5f, 7);
  Linear model(2, 3);
  Train(model, data, 200, 0.5f);
  EXPECT_EQ(Accuracy(model, data), 1.0f);
}

}  // namespace
}  // namespace dive::nn
