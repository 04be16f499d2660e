// File: cheatsheet/networks.h
// -----------------------------------------------------------------------------
//
// Cheat sheet sections 6.6-6.13 (the networks), computed once and shared by
// `networks_test` and the `networks` binary: each architecture of dive's
// model zoo applied, block by block, to one single-channel input of the
// book's size, with the output shape of every top-level layer, as the book
// prints it:
//
//   for layer in net:
//       X = layer(X)
//       print(layer.__class__.__name__, 'output shape:\t', X.shape)
//
// and the channel arithmetic of NiN (the last block's channels are the
// classes), GoogLeNet's Inception blocks (c1 + c2[1] + c3[1] + c4) and
// DenseNet (a dense block adds num_convs x growth rate channels, a
// transition layer halves them and the resolution).
//
// Example:
//
//   for (const BookNetwork& net : BookNetworks()) {
//     NetworkShapes n = NetworkLayerShapes(net);
//     for (const LayerShape& l : n.layers) ...  // "Conv2d", [1, 6, 28, 28]
//   }

#ifndef CHEATSHEET_NETWORKS_H_
#define CHEATSHEET_NETWORKS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "tensor/shape.h"

namespace dive::cheatsheet {

struct LayerShape {
  std::string name;  // the module's class, e.g. "Conv2d", "Sequential"
  Shape shape;       // its output shape
};

struct NetworkShapes {
  std::string model;  // "LeNet", ...
  Shape input;        // [1, 1, side, side]
  std::vector<LayerShape> layers;
};

// LayerShapes()
//
// Runs `net` (a Sequential: its children in order) on zeros of `input`
// shape in evaluation mode without gradients.
NetworkShapes LayerShapes(const std::string& model, nn::Module& net,
                          const Shape& input);

struct BookNetwork {
  std::string model;
  Shape input;
  // Builds the network (weights from dive::DefaultGenerator()).
  std::function<std::shared_ptr<nn::Module>()> make;
};

// BookNetworks()
//
// LeNet (28), AlexNet (224), VGG-11 (224, the full conv_arch), NiN (224),
// GoogLeNet (96), ResNet-18 (224) and DenseNet (96): the sizes at which the
// book prints them (it does not print DenseNet's; 96 is its training size).
std::vector<BookNetwork> BookNetworks();

// NetworkLayerShapes()
//
// Builds `network` (weights drawn from `seed`) and runs `LayerShapes`.
// VGG-11 and AlexNet at 224 have 129M and 47M parameters: initializing them
// takes most of the cheat sheet's time (seconds, not the forward pass).
NetworkShapes NetworkLayerShapes(const BookNetwork& network,
                                 uint64_t seed = 0);

struct ChannelCheck {
  std::string what;
  int64_t by_formula;  // the channels the book's arithmetic predicts
  int64_t by_dive;     // the channels of dive's output
  Shape output;
};

// ChannelArithmetic()
//
// NiN's blocks, GoogLeNet's nine Inception blocks, and DenseNet's
// DenseBlock(2, 3, 10) on [4, 3, 8, 8] and transition_block(23, 10), as in
// the book, each run on an input of its channel count.
std::vector<ChannelCheck> ChannelArithmetic(uint64_t seed = 0);

}  // namespace dive::cheatsheet

#endif  // CHEATSHEET_NETWORKS_H_
