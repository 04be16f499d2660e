// Cheat sheet section 6.11, batch normalization:
//   bazel run //cheatsheet:batch_norm
// prints the training formulas by hand beside BatchNorm1d/2d, the moving
// averages after two batches and the prediction-time formula; and what the
// document's 1/(m - 1) variance would change (PyTorch and dive normalize
// with 1/m and keep 1/(m - 1) for running_var).
#include <iostream>

#include "absl/strings/str_format.h"

#include "cheatsheet/batch_norm.h"
#include "cheatsheet/common.h"
#include "cheatsheet/sheet_main.h"

int main(int argc, char** argv) {
  using namespace dive::cheatsheet;  // NOLINT: a short demo
  InitSheetMain(argc, argv);
  for (const BatchNormCase& c : {FullyConnectedCase(), ConvolutionCase()}) {
    std::cout << c.what << absl::StrFormat(", eps %g, momentum %g\n", c.eps,
                                           c.momentum)
              << "  gamma " << FormatRow(c.gamma) << ", beta "
              << FormatRow(c.beta) << "\n"
              << "  per channel, m = " << c.stats.m << ":\n"
              << "    mu                         " << FormatRow(c.stats.mean)
              << "\n    sigma^2 = 1/m sum (biased) " << FormatRow(c.stats.var_biased)
              << "\n    1/(m-1) sum (document)     "
              << FormatRow(c.stats.var_unbiased) << "\n";
    if (c.x.rank() == 2) {
      std::cout << "  x:\n" << FormatMatrix(c.x, 4, "    ")
                << "  y = gamma (x - mu) / sqrt(sigma^2 + eps) + beta:\n"
                << FormatMatrix(c.y_by_hand, 4, "    ")
                << "  BatchNorm1d (training):\n"
                << FormatMatrix(c.y_by_dive, 4, "    ");
    }
    std::cout << absl::StrFormat(
        "  max |by hand - dive|: %.2g with the biased variance, %.2g with "
        "1/(m - 1)\n",
        MaxAbsDiff(c.y_by_hand, c.y_by_dive),
        MaxAbsDiff(c.y_with_unbiased_var, c.y_by_dive));
    std::cout << "  moving averages after 2 batches (momentum "
              << c.momentum << ", unbiased variance):\n"
              << "    running_mean by formula " << FormatRow(c.running_mean_by_formula)
              << "  dive " << FormatRow(c.running_mean_by_dive) << "\n"
              << "    running_var  by formula " << FormatRow(c.running_var_by_formula)
              << "  dive " << FormatRow(c.running_var_by_dive) << "\n"
              << absl::StrFormat(
                     "  prediction gamma (x - running_mean) / sqrt(running_var "
                     "+ eps) + beta: max |by hand - dive| %.2g\n",
                     MaxAbsDiff(c.predict_by_hand, c.predict_by_dive))
              << absl::StrFormat(
                     "  gamma = sqrt(sigma^2 + eps), beta = mu gives back x: "
                     "max |y - x| %.2g\n\n",
                     MaxAbsDiff(c.y_identity, c.x));
  }
  return 0;
}
