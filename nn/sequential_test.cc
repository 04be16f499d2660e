#include "nn/sequential.h"

#include <memory>
#include <vector>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nn/activation.h"
#include "nn/linear.h"
#include "nn/testing.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::nn {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::Pointwise;

TEST(SequentialTest, ChainsInOrder) {
  auto fc1 = std::make_shared<Linear>(2, 2);
  auto fc2 = std::make_shared<Linear>(2, 1);
  AssignValues(fc1->weight().data(), {1, 0, 0, -1});
  AssignValues(fc1->bias().data(), {0, 0});
  AssignValues(fc2->weight().data(), {1, 1});
  AssignValues(fc2->bias().data(), {0.5f});
  Sequential seq({fc1, std::make_shared<ReLU>(), fc2});
  EXPECT_EQ(seq.size(), 3u);
  EXPECT_EQ(seq.Describe(), "Sequential");
  // [3, 2] -> [3, -2] -> [3, 0] -> 3.5 ; [-1, -4] -> [-1, 4] -> [0, 4] -> 4.5
  const autograd::Variable y =
      seq(autograd::Variable(Tensor::FromVector({3, 2, -1, -4}, {2, 2})));
  EXPECT_THAT(y.data().ToVector(),
              Pointwise(FloatNear(1e-6), std::vector<float>{3.5f, 4.5f}));
}

TEST(SequentialTest, AddNamesByIndexAndKeepsTheType) {
  Sequential seq;
  std::shared_ptr<Linear> fc = seq.Add(std::make_shared<Linear>(3, 4));
  seq.Add(std::make_shared<Tanh>());
  EXPECT_EQ(fc->in_features(), 3);
  EXPECT_EQ(seq.at(0), fc);
  EXPECT_EQ(seq.children()[1].first, "1");
  EXPECT_EQ(seq.NamedParameters()[0].first, "0.weight");
}

TEST(SequentialTest, FromVectorKeepsTheOrder) {
  auto fc = std::make_shared<Linear>(3, 4);
  auto tanh = std::make_shared<Tanh>();
  const std::vector<std::shared_ptr<Module>> modules = {fc, tanh};
  Sequential seq(modules);
  ASSERT_EQ(seq.size(), 2u);
  EXPECT_EQ(seq.at(0), fc);
  EXPECT_EQ(seq.at(1), tanh);
  EXPECT_EQ(seq.children()[1].first, "1");
  EXPECT_EQ(Sequential(std::vector<std::shared_ptr<Module>>()).size(), 0u);
}

TEST(SequentialTest, EmptyIsIdentity) {
  Sequential seq;
  const Tensor x = Tensor::FromVector({1, 2}, {1, 2});
  EXPECT_THAT(seq(autograd::Variable(x)).data().ToVector(), ElementsAre(1, 2));
}

TEST(SequentialTest, GradCheck) {
  ManualSeed(12);
  Sequential seq({std::make_shared<Linear>(3, 4), std::make_shared<Tanh>(),
                  std::make_shared<Linear>(4, 2)});
  const absl::Status s = GradCheckModule(seq, Normal({3, 3}, 0, 1));
  EXPECT_TRUE(s.ok()) << s;
}

TEST(SequentialDeathTest, BadIndexAndNull) {
  Sequential seq({std::make_shared<ReLU>()});
  EXPECT_DEATH(seq.at(1), "Sequential::at\\(1\\) of a Sequential of 1 modules");
  EXPECT_DEATH(Sequential({std::shared_ptr<Module>()}),
               "RegisterModule: '0' is null");
}

}  // namespace
}  // namespace dive::nn
