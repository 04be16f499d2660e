#include "models/nin/nin.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "autograd/functions.h"
#include "autograd/variable.h"
#include "gmock/gmock.h"
#include "glog/logging.h"
#include "gtest/gtest.h"
#include "nn/conv2d.h"
#include "optim/sgd.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

// `state_dict()` of the PyTorch twin, `nin()` in models/pytorch_twins.py
// (printed as "key shape", in PyTorch's order). NiN has no buffers.
constexpr char kTwinStateDict[] = R"(
0.0.weight [96, 1, 11, 11]
0.0.bias [96]
0.2.weight [96, 96, 1, 1]
0.2.bias [96]
0.4.weight [96, 96, 1, 1]
0.4.bias [96]
2.0.weight [256, 96, 5, 5]
2.0.bias [256]
2.2.weight [256, 256, 1, 1]
2.2.bias [256]
2.4.weight [256, 256, 1, 1]
2.4.bias [256]
4.0.weight [384, 256, 3, 3]
4.0.bias [384]
4.2.weight [384, 384, 1, 1]
4.2.bias [384]
4.4.weight [384, 384, 1, 1]
4.4.bias [384]
7.0.weight [10, 384, 3, 3]
7.0.bias [10]
7.2.weight [10, 10, 1, 1]
7.2.bias [10]
7.4.weight [10, 10, 1, 1]
7.4.bias [10]
)";
// sum(p.numel() for p in nin().parameters()).
constexpr int64_t kTwinNumParameters = 1992166;

// (key, shape) pairs of kTwinStateDict in order.
std::vector<std::pair<std::string, std::string>> ParseStateDict(
    const char* text) {
  std::vector<std::pair<std::string, std::string>> entries;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    entries.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  return entries;
}

std::shared_ptr<nn::Module> Make(int64_t size) {
  absl::StatusOr<std::shared_ptr<nn::Module>> net = NinSpec().make(size);
  CHECK(net.ok()) << net.status();
  return *net;
}

TEST(NinTest, RecipeIsTheBooks) {
  const ModelSpec spec = NinSpec();
  EXPECT_EQ(spec.name, "nin");
  EXPECT_FLOAT_EQ(spec.recipe.lr, 0.1f);
  EXPECT_EQ(spec.recipe.batch_size, 128);
  EXPECT_EQ(spec.recipe.epochs, 10);
  EXPECT_EQ(spec.recipe.input_size, 224);
}

TEST(NinTest, OutputShapeAtBookAndMinimumSizes) {
  ManualSeed(0);
  for (int64_t size : {int64_t{224}, kNinMinInputSize}) {
    std::shared_ptr<nn::Module> net = Make(size);
    net->Eval();
    NoGradGuard no_grad;
    const Variable y = (*net)(Variable(Normal({2, 1, size, size}, 0, 1)));
    EXPECT_EQ(y.shape(), Shape({2, 10})) << "input size " << size;
  }
}

TEST(NinTest, RejectsInputsTooSmallForThePooling) {
  for (int64_t size : {int64_t{0}, kNinMinInputSize - 1, int64_t{513}}) {
    absl::StatusOr<std::shared_ptr<nn::Module>> net = NinSpec().make(size);
    ASSERT_FALSE(net.ok()) << size;
    EXPECT_EQ(net.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(net.status().message(), HasSubstr("NiN"));
    EXPECT_THAT(net.status().message(), HasSubstr(std::to_string(size)));
  }
}

TEST(NinTest, ParameterCountMatchesPyTorchTwin) {
  EXPECT_EQ(NiN()->NumParameters(), kTwinNumParameters);
}

TEST(NinTest, StateDictMatchesPyTorchTwin) {
  const auto twin = ParseStateDict(kTwinStateDict);
  const std::shared_ptr<nn::Sequential> net = NiN();
  std::vector<std::pair<std::string, std::string>> ours;
  for (const auto& [key, tensor] : net->StateDict()) {
    ours.emplace_back(key, tensor.shape().ToString());
  }
  auto sorted_twin = twin;
  std::sort(sorted_twin.begin(), sorted_twin.end());
  EXPECT_THAT(ours, ElementsAreArray(sorted_twin));
  // Without buffers, the twin's order is named_parameters()'s.
  std::vector<std::string> twin_params, our_params;
  for (const auto& [key, shape] : twin) twin_params.push_back(key);
  for (const auto& [key, p] : net->NamedParameters()) our_params.push_back(key);
  EXPECT_THAT(our_params, ElementsAreArray(twin_params));
}

TEST(NinTest, BlocksMirrorTheBook) {
  const std::shared_ptr<nn::Sequential> net = NiN();
  ASSERT_EQ(net->size(), 10u);
  const std::vector<std::string> expected = {
      "Sequential",
      "MaxPool2d(kernel=3x3, stride=2, padding=0)",
      "Sequential",
      "MaxPool2d(kernel=3x3, stride=2, padding=0)",
      "Sequential",
      "MaxPool2d(kernel=3x3, stride=2, padding=0)",
      "Dropout(p=0.5)",
      "Sequential",
      "AdaptiveAvgPool2d(1x1)",
      "Flatten(start=1, end=-1)"};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(net->at(i)->Describe(), expected[i]) << i;
  }
  const std::shared_ptr<nn::Sequential> nin_block = NinBlock(96, 256, 5, 1, 2);
  std::vector<std::string> block;
  for (const auto& [name, m] : nin_block->children()) {
    block.push_back(name + " " + m->Describe());
  }
  EXPECT_THAT(block,
              ElementsAreArray(
                  {"0 Conv2d(96, 256, kernel=5x5, stride=1, padding=2)",
                   "1 ReLU",
                   "2 Conv2d(256, 256, kernel=1x1, stride=1, padding=0)",
                   "3 ReLU",
                   "4 Conv2d(256, 256, kernel=1x1, stride=1, padding=0)",
                   "5 ReLU"}));
}

// Conv weights are Xavier-uniform, U(-b, b) with b = sqrt(6 / (fan_in +
// fan_out)); biases keep PyTorch's default U(-1/sqrt(fan_in), ...).
TEST(NinTest, ConvWeightsAreXavierUniform) {
  ManualSeed(1);
  const std::shared_ptr<nn::Sequential> net = NiN();
  auto first = std::dynamic_pointer_cast<nn::Conv2d>(
      std::dynamic_pointer_cast<nn::Sequential>(net->at(0))->at(0));
  ASSERT_NE(first, nullptr);
  // fan_in = 1 * 11 * 11, fan_out = 96 * 11 * 11.
  const float xavier = std::sqrt(6.0f / (121.0f + 96.0f * 121.0f));
  const std::vector<float> w = first->weight().data().ToVector();
  float max_abs = 0;
  for (float v : w) max_abs = std::max(max_abs, std::abs(v));
  EXPECT_LE(max_abs, xavier);
  EXPECT_GT(max_abs, 0.95f * xavier);
  const std::vector<float> b = first->bias().data().ToVector();
  float max_bias = 0;
  for (float v : b) max_bias = std::max(max_bias, std::abs(v));
  EXPECT_LE(max_bias, 1.0f / 11.0f);
  EXPECT_GT(max_bias, xavier);  // not Xavier-initialized
}

TEST(NinTest, SgdStepsReduceTheLossOnAFixedBatch) {
  ManualSeed(2);
  const std::shared_ptr<nn::Module> net = Make(kNinMinInputSize);
  const Variable x(Normal({4, 1, kNinMinInputSize, kNinMinInputSize}, 0, 1));
  const Tensor labels = Tensor::FromInt64Vector({0, 1, 2, 3}, {4});
  optim::SGD sgd(net->Parameters(), {.lr = 0.1f});
  std::vector<float> losses;
  for (int step = 0; step < 8; ++step) {
    Variable loss = SoftmaxCrossEntropy((*net)(x), labels);
    losses.push_back(loss.data().item());
    sgd.ZeroGrad();
    loss.Backward();
    sgd.Step();
  }
  EXPECT_LT(losses.back(), losses.front())
      << ::testing::PrintToString(losses);
}

}  // namespace
}  // namespace dive::models
