// Cheat sheet section 1, softmax regression (1.2-1.4):
//   bazel run //cheatsheet:softmax_regression
// prints the single-example and batch predictions, the cross-entropy by
// -log y_hat[y] and by dive, and one SGD step by the formula and by dive.
#include <iostream>

#include "absl/strings/str_format.h"

#include "cheatsheet/common.h"
#include "cheatsheet/sheet_main.h"
#include "cheatsheet/softmax_regression.h"

int main(int argc, char** argv) {
  using namespace dive::cheatsheet;  // NOLINT: a short demo
  InitSheetMain(argc, argv);
  const SoftmaxRegressionSheet s = RunSoftmaxRegression();
  std::cout << "X (n=4, d=3):\n" << FormatMatrix(s.x)
            << "W (d=3, C=3):\n" << FormatMatrix(s.w)
            << "b: " << FormatRow(s.b.ToVector()) << "\n"
            << "labels: ";
  for (int64_t y : s.labels.ToInt64Vector()) std::cout << y << " ";
  std::cout << "\n\n1.2 y_hat = softmax(x W + b), one row at a time:\n"
            << FormatMatrix(s.y_hat_single)
            << "1.3 Y_hat = softmax(X W + b), the batch (b broadcast):\n"
            << FormatMatrix(s.y_hat_batch)
            << absl::StrFormat("    max |difference| = %.2g\n\n",
                               MaxAbsDiff(s.y_hat_single, s.y_hat_batch))
            << "1.4 cross-entropy -log y_hat[y] per example: "
            << FormatRow(s.ce_by_formula) << "\n"
            << absl::StrFormat(
                   "    mean %.6f, dive's SoftmaxCrossEntropy %.6f\n\n",
                   s.ce_mean_by_formula, s.ce_by_dive)
            << absl::StrFormat(
                   "1.4 one step, alpha = %.1f, |B| = 4:\n"
                   "    W + alpha/|B| sum x^T (y - y_hat):\n",
                   s.lr)
            << FormatMatrix(s.w_by_formula, 4, "      ")
            << "    dive SGD step:\n"
            << FormatMatrix(s.w_by_sgd, 4, "      ")
            << "    b by the formula: " << FormatRow(s.b_by_formula.ToVector())
            << "\n    b by dive SGD:    " << FormatRow(s.b_by_sgd.ToVector())
            << absl::StrFormat("\n    max |difference| W %.2g, b %.2g\n",
                               MaxAbsDiff(s.w_by_formula, s.w_by_sgd),
                               MaxAbsDiff(s.b_by_formula, s.b_by_sgd));
  return 0;
}
