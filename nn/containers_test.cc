#include "nn/containers.h"

#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nn/activation.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "nn/testing.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::nn {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::Pointwise;

std::vector<std::string> Names(const Module& m) {
  std::vector<std::string> names;
  for (const auto& [name, param] : m.NamedParameters()) names.push_back(name);
  return names;
}

TEST(IdentityTest, ReturnsTheInput) {
  Identity id;
  const Tensor x = Tensor::FromVector({1, 2, 3}, {3});
  EXPECT_THAT(id(autograd::Variable(x)).data().ToVector(),
              ElementsAre(1, 2, 3));
  EXPECT_EQ(id.Describe(), "Identity");
}

TEST(ConcatTest, JoinsBranchesAlongChannels) {
  ManualSeed(1);
  auto a = std::make_shared<Conv2d>(2, 3, 1);
  auto b = std::make_shared<Conv2d>(2, 4, 3, /*stride=*/1, /*padding=*/1);
  Concat concat({a, b});
  EXPECT_EQ(concat.Describe(), "Concat(axis=1)");
  EXPECT_THAT(Names(concat),
              ElementsAre("0.weight", "0.bias", "1.weight", "1.bias"));
  const autograd::Variable x(Normal({2, 2, 5, 5}, 0, 1));
  const autograd::Variable y = concat(x);
  ASSERT_EQ(y.shape(), Shape({2, 7, 5, 5}));
  const Tensor ya = (*a)(x).data(), yb = (*b)(x).data();
  for (int64_t n = 0; n < 2; ++n) {
    for (int64_t c = 0; c < 7; ++c) {
      for (int64_t i = 0; i < 5; ++i) {
        for (int64_t j = 0; j < 5; ++j) {
          const float want = c < 3 ? ya.at<float>({n, c, i, j})
                                   : yb.at<float>({n, c - 3, i, j});
          EXPECT_EQ(y.data().at<float>({n, c, i, j}), want);
        }
      }
    }
  }
}

TEST(ConcatTest, AddAndOtherAxis) {
  Concat concat(/*axis=*/0);
  concat.Add(std::make_shared<Identity>());
  concat.Add(std::make_shared<ReLU>());
  const Tensor x = Tensor::FromVector({-1, 2}, {1, 2});
  EXPECT_THAT(concat(autograd::Variable(x)).data().ToVector(),
              ElementsAre(-1, 2, 0, 2));
}

TEST(ConcatTest, GradCheck) {
  ManualSeed(2);
  Concat concat({std::make_shared<Linear>(3, 2), std::make_shared<Tanh>(),
                 std::make_shared<Linear>(3, 1)});
  const absl::Status s = GradCheckModule(concat, Normal({2, 3}, 0, 1));
  EXPECT_TRUE(s.ok()) << s;
}

TEST(ResidualTest, IdentityShortcut) {
  auto body = std::make_shared<Linear>(2, 2);
  AssignValues(body->weight().data(), {1, 2, 3, 4});
  AssignValues(body->bias().data(), {0, 1});
  Residual residual(body);
  EXPECT_THAT(Names(residual), ElementsAre("body.weight", "body.bias"));
  // body([1, -1]) = [-1, 0]; plus x = [0, -1].
  const autograd::Variable y =
      residual(autograd::Variable(Tensor::FromVector({1, -1}, {1, 2})));
  EXPECT_THAT(y.data().ToVector(),
              Pointwise(FloatNear(1e-6), std::vector<float>{0, -1}));
}

TEST(ResidualTest, ProjectionShortcut) {
  ManualSeed(3);
  auto body = std::make_shared<Sequential>(
      std::initializer_list<std::shared_ptr<Module>>{
          std::make_shared<Linear>(3, 4), std::make_shared<ReLU>(),
          std::make_shared<Linear>(4, 4)});
  auto shortcut = std::make_shared<Linear>(3, 4, /*bias=*/false);
  Residual residual(body, shortcut);
  EXPECT_THAT(Names(residual),
              ElementsAre("body.0.weight", "body.0.bias", "body.2.weight",
                          "body.2.bias", "shortcut.weight"));
  const autograd::Variable x(Normal({2, 3}, 0, 1));
  const Tensor want = ops::Add((*body)(x).data(), (*shortcut)(x).data());
  EXPECT_THAT(residual(x).data().ToVector(),
              Pointwise(FloatNear(1e-6), want.ToVector()));
  const absl::Status s = GradCheckModule(residual, Normal({2, 3}, 0, 1));
  EXPECT_TRUE(s.ok()) << s;
}

TEST(ContainersDeathTest, Mismatches) {
  Residual residual(std::make_shared<Linear>(3, 4));
  EXPECT_DEATH(residual(autograd::Variable(Tensor::Zeros({2, 3}))),
               "Residual: body output \\[2, 4\\] and shortcut output "
               "\\[2, 3\\] differ");
  EXPECT_DEATH(Concat()(autograd::Variable(Tensor::Zeros({2, 3}))),
               "no branches");
  Concat bad({std::make_shared<Identity>(),
              std::make_shared<Conv2d>(2, 2, 3)});
  EXPECT_DEATH(bad(autograd::Variable(Tensor::Zeros({1, 2, 4, 4}))),
               "Concat\\(axis=1\\): cannot join the branch outputs along axis "
               "1 \\(input \\[1, 2, 4, 4\\]; 0: \\[1, 2, 4, 4\\], 1: "
               "\\[1, 2, 2, 2\\]\\)");
  EXPECT_DEATH(Residual(nullptr), "the body must not be null");
}

}  // namespace
}  // namespace dive::nn
