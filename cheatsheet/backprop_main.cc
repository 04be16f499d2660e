// Cheat sheet section 5, backpropagation:
//   bazel run //cheatsheet:backprop
// runs the one-hidden-layer MLP with an L2 penalty on one example and prints
// each gradient of 5.2 computed by hand beside dive's autograd.
#include <iostream>

#include "absl/strings/str_format.h"

#include "cheatsheet/backprop.h"
#include "cheatsheet/common.h"
#include "cheatsheet/sheet_main.h"

int main(int argc, char** argv) {
  using namespace dive::cheatsheet;  // NOLINT: a short demo
  InitSheetMain(argc, argv);
  const BackpropSheet b = RunBackprop();
  std::cout << "5.1 forward: x in R^4, z = W1 x, h = tanh(z), o = W2 h, y = "
            << b.y << ", lambda = " << b.lambda << "\n"
            << "  z^T = " << FormatRow(b.z.ToVector()) << "\n"
            << "  h^T = " << FormatRow(b.h.ToVector()) << "\n"
            << "  o^T = " << FormatRow(b.o.ToVector()) << "\n"
            << absl::StrFormat(
                   "  L = %.6f, s = %.6f, J = %.6f (autograd's J %.6f)\n\n",
                   b.loss, b.penalty, b.objective, b.autograd_objective)
            << "5.2 backward by hand:\n"
            << "  dJ/do^T = softmax(o) - onehot(y) = "
            << FormatRow(b.dj_do.ToVector()) << "\n"
            << "  dJ/dh^T = (W2^T dJ/do)^T         = "
            << FormatRow(b.dj_dh.ToVector()) << "\n"
            << "  dJ/dz^T = dJ/dh * phi'(z)        = "
            << FormatRow(b.dj_dz.ToVector()) << "\n\n"
            << "  dJ/dW2 = dJ/do h^T + lambda W2     | autograd\n";
  const auto side_by_side = [](const dive::Tensor& a, const dive::Tensor& c) {
    for (int64_t i = 0; i < a.dim(0); ++i) {
      std::cout << "    " << FormatRow(a.Select(0, i).Contiguous().ToVector())
                << "  " << FormatRow(c.Select(0, i).Contiguous().ToVector())
                << "\n";
    }
  };
  side_by_side(b.dj_dw2, b.autograd_dw2);
  std::cout << "  dJ/dW1 = dJ/dz x^T + lambda W1     | autograd\n";
  side_by_side(b.dj_dw1, b.autograd_dw1);
  std::cout << "  dJ/dx^T = (W1^T dJ/dz)^T: " << FormatRow(b.dj_dx.ToVector())
            << "\n               autograd: "
            << FormatRow(b.autograd_dx.ToVector()) << "\n"
            << absl::StrFormat(
                   "\n  max |hand - autograd|: W2 %.2g, W1 %.2g, x %.2g\n",
                   MaxAbsDiff(b.dj_dw2, b.autograd_dw2),
                   MaxAbsDiff(b.dj_dw1, b.autograd_dw1),
                   MaxAbsDiff(b.dj_dx, b.autograd_dx));
  return 0;
}
