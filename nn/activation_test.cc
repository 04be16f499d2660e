#include "nn/activation.h"

#include <cmath>
#include <vector>

#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nn/testing.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::nn {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::Pointwise;

const std::vector<float> kInputs = {-2.0f, -0.5f, 0.25f, 1.0f, 3.0f, -1.0f};

Tensor Input() { return Tensor::FromVector(kInputs, {2, 3}); }

std::vector<float> Apply(float (*f)(float)) {
  std::vector<float> out;
  for (float x : kInputs) out.push_back(f(x));
  return out;
}

void ExpectGradientsOk(Module& m, const Tensor& x) {
  const absl::Status s = GradCheckModule(m, x);
  EXPECT_TRUE(s.ok()) << m.Describe() << ": " << s;
}

TEST(ActivationTest, ReLU) {
  ReLU relu;
  EXPECT_EQ(relu.Describe(), "ReLU");
  EXPECT_THAT(relu(autograd::Variable(Input())).data().ToVector(),
              ElementsAre(0, 0, 0.25f, 1, 3, 0));
  EXPECT_EQ(relu.NumParameters(), 0);
}

TEST(ActivationTest, Sigmoid) {
  Sigmoid sigmoid;
  EXPECT_THAT(sigmoid(autograd::Variable(Input())).data().ToVector(),
              Pointwise(FloatNear(1e-6), Apply([](float x) {
                          return 1.0f / (1.0f + std::exp(-x));
                        })));
}

TEST(ActivationTest, Tanh) {
  Tanh tanh_module;
  EXPECT_THAT(
      tanh_module(autograd::Variable(Input())).data().ToVector(),
      Pointwise(FloatNear(1e-6), Apply([](float x) { return std::tanh(x); })));
}

TEST(ActivationTest, SoftmaxAlongAxis) {
  Softmax rows(/*axis=*/1);
  EXPECT_EQ(rows.Describe(), "Softmax(axis=1)");
  const std::vector<float> y =
      rows(autograd::Variable(Input())).data().ToVector();
  for (int r = 0; r < 2; ++r) {
    double z = 0;
    for (int c = 0; c < 3; ++c) z += std::exp(kInputs[3 * r + c]);
    for (int c = 0; c < 3; ++c) {
      EXPECT_NEAR(y[3 * r + c], std::exp(kInputs[3 * r + c]) / z, 1e-6);
    }
  }
  Softmax columns(/*axis=*/0);
  const std::vector<float> yc =
      columns(autograd::Variable(Input())).data().ToVector();
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(yc[c] + yc[3 + c], 1.0f, 1e-6);
}

TEST(ActivationTest, GradCheck) {
  ReLU relu;
  Sigmoid sigmoid;
  Tanh tanh_module;
  Softmax softmax;
  ExpectGradientsOk(relu, Input());  // no input within eps of the kink
  ManualSeed(4);
  ExpectGradientsOk(sigmoid, Normal({3, 4}, 0, 2));
  ExpectGradientsOk(tanh_module, Normal({3, 4}, 0, 1));
  ExpectGradientsOk(softmax, Normal({3, 4}, 0, 2));
}

}  // namespace
}  // namespace dive::nn
