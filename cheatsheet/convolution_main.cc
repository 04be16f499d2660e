// Cheat sheet sections 6.1-6.5, convolution:
//   bazel run //cheatsheet:convolution
// prints corr2d by definition beside Conv2d, learns the edge-detection
// kernel [1, -1], tabulates the output-size formula against Conv2d and the
// pools, and runs the book's multi-channel, 1x1 and pooling examples.
#include <iostream>

#include "absl/strings/str_format.h"

#include "cheatsheet/common.h"
#include "cheatsheet/convolution.h"
#include "cheatsheet/sheet_main.h"

namespace {

void PrintPairs(const std::vector<dive::cheatsheet::DefinitionVsDive>& ex) {
  using dive::cheatsheet::FormatMatrix;
  using dive::cheatsheet::MaxAbsDiff;
  for (const auto& e : ex) {
    std::cout << "  " << e.what << "\n    by definition:\n"
              << FormatMatrix(e.by_definition, 2, "      ")
              << "    by dive " << e.by_dive.shape() << ":\n"
              << FormatMatrix(e.by_dive, 2, "      ")
              << absl::StrFormat("    max |difference| %.2g\n",
                                 MaxAbsDiff(e.by_definition.Reshape(
                                                e.by_dive.shape()),
                                            e.by_dive));
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dive::cheatsheet;  // NOLINT: a short demo
  InitSheetMain(argc, argv);
  std::cout << "6.1 cross-correlation\n";
  PrintPairs(Corr2dExamples());

  const EdgeDetection e = LearnEdgeKernel();
  std::cout << "\n6.1 edge detection: X\n" << FormatMatrix(e.x, 0, "    ")
            << "  Y = corr2d(X, [1, -1])\n" << FormatMatrix(e.y, 0, "    ")
            << "  learning K from X and Y (Conv2d(1, 1, (1, 2)), lr "
            << e.lr << "):\n";
  for (size_t i = 1; i < e.losses.size(); i += 2) {
    std::cout << absl::StrFormat("    epoch %d, loss %.3f\n", i + 1,
                                 e.losses[i]);
  }
  std::cout << "  learned kernel: " << FormatRow(e.learned) << "\n\n";

  std::cout << "6.2 output size floor((n - k + p + s) / s), p total padding\n"
            << "     n   k   p   s  formula  Conv2d  MaxPool2d  AvgPool2d\n";
  for (const OutSizeRow& r : OutputSizeTable()) {
    const std::string pool_max =
        r.max_pool < 0 ? "-" : absl::StrCat(r.max_pool);
    const std::string pool_avg =
        r.avg_pool < 0 ? "-" : absl::StrCat(r.avg_pool);
    std::cout << absl::StrFormat("  %4d %3d %3d %3d %8d %7d %10s %10s  %s\n",
                                 r.n, r.k, r.p, r.s, r.formula, r.conv,
                                 pool_max, pool_avg, r.note);
  }
  const std::vector<int64_t> ns = NonSquareOutputSize();
  std::cout << absl::StrFormat(
      "  8x8, kernel 3x5, padding (0, 1), stride (3, 4): formula %dx%d, "
      "Conv2d %dx%d\n  (pooling pads at most half its window: '-')\n\n",
      ns[0], ns[1], ns[2], ns[3]);

  std::cout << "6.3-6.4 channels\n";
  PrintPairs(ChannelExamples());
  std::cout << "\n6.5 pooling (for the padded cases, 'by definition' is the "
               "book's printed result)\n";
  PrintPairs(PoolingExamples());
  return 0;
}
