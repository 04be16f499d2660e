#include "models/nin/nin.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dive::models {
namespace {

using ::testing::ElementsAreArray;

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

}  // namespace
}  // namespace dive::models
