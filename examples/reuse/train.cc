// Trains a two-layer MLP on a synthetic two-class problem (points inside or
// outside a circle) using only @dive//nn and @dive//optim, and exits non-zero
// unless it learns.
#include <cstdio>
#include <memory>

#include "autograd/functions.h"
#include "nn/activation.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "optim/sgd.h"
#include "tensor/random.h"

int main() {
  using namespace dive;
  ManualSeed(7);
  constexpr int64_t kN = 512;
  const Tensor x = Uniform({kN, 2}, -1.0f, 1.0f);
  std::vector<int64_t> labels(kN);
  const float* p = x.data();
  for (int64_t i = 0; i < kN; ++i) {
    labels[i] = p[2 * i] * p[2 * i] + p[2 * i + 1] * p[2 * i + 1] < 0.5f;
  }
  const Tensor y = Tensor::FromInt64Vector(labels, {kN});

  nn::Sequential net({std::make_shared<nn::Linear>(2, 32),
                      std::make_shared<nn::ReLU>(),
                      std::make_shared<nn::Linear>(32, 2)});
  optim::SGD sgd(net.Parameters(), {.lr = 0.5f, .momentum = 0.9f});
  float first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    autograd::Variable loss =
        autograd::SoftmaxCrossEntropy(net(autograd::Variable(x)), y);
    sgd.ZeroGrad();
    loss.Backward();
    sgd.Step();
    last = loss.data().item();
    if (step == 0) first = last;
    if (step % 100 == 0) std::printf("step %d: loss %.4f\n", step, last);
  }
  std::printf("loss %.4f -> %.4f\n", first, last);
  return last < 0.5f * first ? 0 : 1;
}
