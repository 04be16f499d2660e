// Cheat sheet section 2, the multilayer perceptron (2.1-2.4):
//   bazel run //cheatsheet:mlp -- --out=/tmp/cheatsheet
// prints ReLU, sigmoid, tanh and their autograd derivatives beside the closed
// forms, shows that two affine layers collapse into one, and draws the
// functions and gradients on [-8, 8] into <out>/activations.png.
#include <iostream>

#include "absl/strings/str_format.h"

#include "cheatsheet/common.h"
#include "cheatsheet/mlp.h"
#include "cheatsheet/sheet_figure.h"
#include "cheatsheet/sheet_main.h"

int main(int argc, char** argv) {
  using namespace dive::cheatsheet;  // NOLINT: a short demo
  InitSheetMain(argc, argv);
  const ActivationCurves a = ComputeActivations();
  std::cout << "2.3 activations by dive (autograd for the gradients) and by "
               "the closed forms\n"
            << "    x     relu  relu'  sigmoid  sigmoid' (formula)    tanh  "
               "tanh' (formula)\n";
  for (float x : {-8.0f, -4.0f, -2.0f, -1.0f, 0.0f, 1.0f, 2.0f, 4.0f, 8.0f}) {
    const size_t i = static_cast<size_t>((x + 8.0f) * 10.0f + 0.5f);
    std::cout << absl::StrFormat(
        "%5.1f %8.4f %5.0f %8.4f %9.6f (%8.6f) %7.4f %8.6f (%8.6f)\n", x,
        a.relu[i], a.relu_grad[i], a.sigmoid[i], a.sigmoid_grad[i],
        a.sigmoid_grad_formula[i], a.tanh[i], a.tanh_grad[i],
        a.tanh_grad_formula[i]);
  }
  std::cout << absl::StrFormat(
      "    max |autograd - closed form| over 161 points: relu' %.2g, "
      "sigmoid' %.2g, tanh' %.2g\n\n",
      MaxAbsDiff(a.relu_grad, a.relu_grad_formula),
      MaxAbsDiff(a.sigmoid_grad, a.sigmoid_grad_formula),
      MaxAbsDiff(a.tanh_grad, a.tanh_grad_formula));

  const AffineCollapse c = ComputeAffineCollapse();
  std::cout << "2.2 no activation: O = (X W_h + b_h) W_o + b_o\n"
            << FormatMatrix(c.two_layers)
            << "    is X W + b with W = W_h W_o, b = b_h W_o + b_o:\n"
            << FormatMatrix(c.one_layer)
            << absl::StrFormat("    max |difference| = %.2g; with a ReLU "
                               "between the layers it is %.2g\n\n",
                               MaxAbsDiff(c.two_layers, c.one_layer),
                               MaxAbsDiff(c.with_relu, c.one_layer));

  return DrawSheetFigure("activations.dat", ActivationsTable(a),
                         kActivationsScript, "activations.png", 900, 560);
}
