// Cheat sheet section 3, weight decay:
//   bazel run //cheatsheet:weight_decay -- --out=/tmp/cheatsheet
// checks the update w <- (1 - eta lambda/|B|) w - eta/|B| sum ... against
// SGD's weight_decay, runs the book's overfitting experiment (20 examples,
// 200 inputs) for lambda = 0 and 3, prints the losses and the norm of w, and
// draws the loss curves on a log scale into <out>/weight_decay.png.
#include <iostream>

#include "absl/strings/str_format.h"

#include "cheatsheet/common.h"
#include "cheatsheet/sheet_figure.h"
#include "cheatsheet/sheet_main.h"
#include "cheatsheet/weight_decay.h"

int main(int argc, char** argv) {
  using namespace dive::cheatsheet;  // NOLINT: a short demo
  InitSheetMain(argc, argv);
  const WeightDecayStep s = CheckWeightDecayStep();
  std::cout << absl::StrFormat(
                   "one step, |B| = 5, eta = %.1f, lambda = %.0f:\n", s.eta,
                   s.lambda)
            << "  w by (1 - eta lambda/|B|) w - eta/|B| sum x (x w + b - y): "
            << FormatRow(s.w_by_formula.ToVector(), 6) << "\n"
            << "  w by dive SGD, weight_decay = lambda/|B|:                   "
            << FormatRow(s.w_by_weight_decay.ToVector(), 6) << "\n"
            << "  w by autograd of l + lambda/(2|B|) ||w||^2, plain SGD:      "
            << FormatRow(s.w_by_penalty.ToVector(), 6) << "\n"
            << "  b (not decayed): " << FormatRow(s.b_by_formula.ToVector(), 6)
            << " " << FormatRow(s.b_by_weight_decay.ToVector(), 6) << " "
            << FormatRow(s.b_by_penalty.ToVector(), 6) << "\n\n";

  const WeightDecayRun plain = TrainWeightDecay(0.0f);
  const WeightDecayRun decayed = TrainWeightDecay(3.0f);
  std::cout << "20 training examples, 200 inputs, batch 1, lr 0.003:\n"
            << "  epoch   lambda=0: train      test    lambda=3: train      "
               "test\n";
  for (size_t e : {0, 4, 9, 19, 49, 99}) {
    std::cout << absl::StrFormat("  %5d   %15.3g %9.3g   %15.3g %9.3g\n", e + 1,
                                 plain.train_loss[e], plain.test_loss[e],
                                 decayed.train_loss[e], decayed.test_loss[e]);
  }
  std::cout << absl::StrFormat("  L2 norm of w: %.4f (lambda=0), %.4f "
                               "(lambda=3)\n\n",
                               plain.w_norm, decayed.w_norm);

  return DrawSheetFigure("weight_decay.dat", WeightDecayTable(plain, decayed),
                         kWeightDecayScript, "weight_decay.png", 900, 380);
}
