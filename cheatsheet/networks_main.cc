// Cheat sheet sections 6.6-6.13, the networks:
//   bazel run //cheatsheet:networks
// prints each architecture's output shapes layer by layer for one
// single-channel input, as the book does, and the channel arithmetic of
// NiN, GoogLeNet's Inception blocks and DenseNet.
#include <iostream>

#include "absl/strings/str_format.h"

#include "cheatsheet/networks.h"
#include "cheatsheet/sheet_main.h"

int main(int argc, char** argv) {
  using namespace dive::cheatsheet;  // NOLINT: a short demo
  InitSheetMain(argc, argv);
  for (const BookNetwork& network : BookNetworks()) {
    const NetworkShapes n = NetworkLayerShapes(network);
    std::cout << n.model << ", X = " << n.input << ":\n";
    for (const LayerShape& l : n.layers) {
      std::cout << absl::StrFormat("  %-18s output shape:\t %s\n", l.name,
                                   l.shape.ToString());
    }
    std::cout << std::endl;  // one network at a time: VGG takes a while
  }
  std::cout << "channel arithmetic (predicted, dive's output):\n";
  for (const ChannelCheck& c : ChannelArithmetic()) {
    std::cout << absl::StrFormat("  %-44s %5d %5d  %s\n", c.what, c.by_formula,
                                 c.by_dive, c.output.ToString());
  }
  return 0;
}
