#include "cheatsheet/networks.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace dive::cheatsheet {
namespace {

using Printed = std::vector<std::pair<std::string, Shape>>;

// Compares dive's layer shapes of the book network named `model` with what
// the book prints ("Conv2d output shape: torch.Size([1, 6, 28, 28])", ...).
void ExpectBookShapes(const std::string& model, const Shape& input,
                      const Printed& book) {
  for (const BookNetwork& network : BookNetworks()) {
    if (network.model != model) continue;
    EXPECT_EQ(network.input, input);
    const NetworkShapes n = NetworkLayerShapes(network);
    ASSERT_EQ(n.layers.size(), book.size()) << model;
    for (size_t i = 0; i < book.size(); ++i) {
      EXPECT_EQ(n.layers[i].name, book[i].first) << model << " layer " << i;
      EXPECT_EQ(n.layers[i].shape, book[i].second) << model << " layer " << i;
    }
    return;
  }
  ADD_FAILURE() << "no network " << model;
}

TEST(NetworksTest, LeNet) {
  ExpectBookShapes("LeNet", {1, 1, 28, 28},
                   {{"Conv2d", {1, 6, 28, 28}},
                    {"Sigmoid", {1, 6, 28, 28}},
                    {"AvgPool2d", {1, 6, 14, 14}},
                    {"Conv2d", {1, 16, 10, 10}},
                    {"Sigmoid", {1, 16, 10, 10}},
                    {"AvgPool2d", {1, 16, 5, 5}},
                    {"Flatten", {1, 400}},
                    {"Linear", {1, 120}},
                    {"Sigmoid", {1, 120}},
                    {"Linear", {1, 84}},
                    {"Sigmoid", {1, 84}},
                    {"Linear", {1, 10}}});
}

TEST(NetworksTest, AlexNet) {
  ExpectBookShapes("AlexNet", {1, 1, 224, 224},
                   {{"Conv2d", {1, 96, 54, 54}},
                    {"ReLU", {1, 96, 54, 54}},
                    {"MaxPool2d", {1, 96, 26, 26}},
                    {"Conv2d", {1, 256, 26, 26}},
                    {"ReLU", {1, 256, 26, 26}},
                    {"MaxPool2d", {1, 256, 12, 12}},
                    {"Conv2d", {1, 384, 12, 12}},
                    {"ReLU", {1, 384, 12, 12}},
                    {"Conv2d", {1, 384, 12, 12}},
                    {"ReLU", {1, 384, 12, 12}},
                    {"Conv2d", {1, 256, 12, 12}},
                    {"ReLU", {1, 256, 12, 12}},
                    {"MaxPool2d", {1, 256, 5, 5}},
                    {"Flatten", {1, 6400}},
                    {"Linear", {1, 4096}},
                    {"ReLU", {1, 4096}},
                    {"Dropout", {1, 4096}},
                    {"Linear", {1, 4096}},
                    {"ReLU", {1, 4096}},
                    {"Dropout", {1, 4096}},
                    {"Linear", {1, 10}}});
}

TEST(NetworksTest, Vgg11) {
  // Each VGG block halves the side and sets the channels of conv_arch.
  ExpectBookShapes("VGG-11", {1, 1, 224, 224},
                   {{"Sequential", {1, 64, 112, 112}},
                    {"Sequential", {1, 128, 56, 56}},
                    {"Sequential", {1, 256, 28, 28}},
                    {"Sequential", {1, 512, 14, 14}},
                    {"Sequential", {1, 512, 7, 7}},
                    {"Flatten", {1, 25088}},
                    {"Linear", {1, 4096}},
                    {"ReLU", {1, 4096}},
                    {"Dropout", {1, 4096}},
                    {"Linear", {1, 4096}},
                    {"ReLU", {1, 4096}},
                    {"Dropout", {1, 4096}},
                    {"Linear", {1, 10}}});
}

TEST(NetworksTest, NiN) {
  ExpectBookShapes("NiN", {1, 1, 224, 224},
                   {{"Sequential", {1, 96, 54, 54}},
                    {"MaxPool2d", {1, 96, 26, 26}},
                    {"Sequential", {1, 256, 26, 26}},
                    {"MaxPool2d", {1, 256, 12, 12}},
                    {"Sequential", {1, 384, 12, 12}},
                    {"MaxPool2d", {1, 384, 5, 5}},
                    {"Dropout", {1, 384, 5, 5}},
                    {"Sequential", {1, 10, 5, 5}},
                    {"AdaptiveAvgPool2d", {1, 10, 1, 1}},
                    {"Flatten", {1, 10}}});
}

TEST(NetworksTest, GoogLeNet) {
  ExpectBookShapes("GoogLeNet", {1, 1, 96, 96},
                   {{"Sequential", {1, 64, 24, 24}},
                    {"Sequential", {1, 192, 12, 12}},
                    {"Sequential", {1, 480, 6, 6}},
                    {"Sequential", {1, 832, 3, 3}},
                    {"Sequential", {1, 1024}},
                    {"Linear", {1, 10}}});
}

TEST(NetworksTest, ResNet18) {
  ExpectBookShapes("ResNet-18", {1, 1, 224, 224},
                   {{"Sequential", {1, 64, 56, 56}},
                    {"Sequential", {1, 64, 56, 56}},
                    {"Sequential", {1, 128, 28, 28}},
                    {"Sequential", {1, 256, 14, 14}},
                    {"Sequential", {1, 512, 7, 7}},
                    {"AdaptiveAvgPool2d", {1, 512, 1, 1}},
                    {"Flatten", {1, 512}},
                    {"Linear", {1, 10}}});
}

TEST(NetworksTest, DenseNetGrowsAndHalvesItsChannels) {
  // 64 stem channels; each dense block adds 4 x 32; each transition halves
  // the channels and the side.
  ExpectBookShapes("DenseNet", {1, 1, 96, 96},
                   {{"Sequential", {1, 64, 24, 24}},
                    {"DenseBlock", {1, 64 + 128, 24, 24}},
                    {"Sequential", {1, 96, 12, 12}},
                    {"DenseBlock", {1, 96 + 128, 12, 12}},
                    {"Sequential", {1, 112, 6, 6}},
                    {"DenseBlock", {1, 112 + 128, 6, 6}},
                    {"Sequential", {1, 120, 3, 3}},
                    {"DenseBlock", {1, 120 + 128, 3, 3}},
                    {"BatchNorm2d", {1, 248, 3, 3}},
                    {"ReLU", {1, 248, 3, 3}},
                    {"AdaptiveAvgPool2d", {1, 248, 1, 1}},
                    {"Flatten", {1, 248}},
                    {"Linear", {1, 10}}});
}

TEST(NetworksTest, ChannelArithmetic) {
  const std::vector<ChannelCheck> checks = ChannelArithmetic();
  ASSERT_EQ(checks.size(), 4u + 9u + 2u);
  for (const ChannelCheck& c : checks) {
    EXPECT_EQ(c.by_dive, c.by_formula) << c.what;
  }
  // NiN: the last block has one channel per class.
  EXPECT_EQ(checks[3].output, Shape({1, 10, 5, 5}));
  // The Inception blocks' outputs, as the book lists them.
  std::vector<int64_t> inception;
  for (size_t i = 4; i < 13; ++i) inception.push_back(checks[i].by_dive);
  EXPECT_EQ(inception, std::vector<int64_t>(
                           {256, 480, 512, 512, 512, 528, 832, 832, 1024}));
  // Inception keeps the resolution.
  EXPECT_EQ(checks[4].output, Shape({1, 256, 12, 12}));
  // The book's DenseBlock(2, 3, 10) and transition_block(23, 10).
  EXPECT_EQ(checks[13].output, Shape({4, 23, 8, 8}));
  EXPECT_EQ(checks[14].output, Shape({4, 10, 4, 4}));
}

}  // namespace
}  // namespace dive::cheatsheet
