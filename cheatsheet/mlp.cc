#include "cheatsheet/mlp.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "autograd/functions.h"
#include "autograd/variable.h"
#include "nn/linear.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace dive::cheatsheet {
namespace {

constexpr int kPoints = 161;

// f(x) and df/dx at every x, by autograd: the gradient of sum(f(x)) with
// respect to x is f'(x) elementwise.
void ByAutograd(
    const std::function<autograd::Variable(const autograd::Variable&)>& f,
    const std::vector<float>& x, std::vector<float>* value,
    std::vector<float>* grad) {
  autograd::Variable v(Tensor::FromVector(x, {static_cast<int64_t>(x.size())}),
                       /*requires_grad=*/true);
  autograd::Variable y = f(v);
  *value = y.data().ToVector();
  autograd::Variable total = Sum(y);
  total.Backward();
  *grad = v.grad().ToVector();
}

}  // namespace

const char kActivationsScript[] =
    "set multiplot layout 2,3\n"
    "set grid\n"
    "set offsets 0, 0, graph 0.08, graph 0.08\n"
    "set xrange [-8:8]\n"
    "set xlabel 'x'\n"
    "set key top left\n"
    "plot 'activations.dat' using 1:2 with lines lw 2 title 'relu(x)'\n"
    "plot 'activations.dat' using 1:4 with lines lw 2 title 'sigmoid(x)'\n"
    "plot 'activations.dat' using 1:6 with lines lw 2 title 'tanh(x)'\n"
    "plot 'activations.dat' using 1:3 with lines lw 2 title 'grad of relu'\n"
    "plot 'activations.dat' using 1:5 with lines lw 2 title 'grad of sigmoid'\n"
    "plot 'activations.dat' using 1:7 with lines lw 2 title 'grad of tanh'\n"
    "unset multiplot\n";

ActivationCurves ComputeActivations() {
  ActivationCurves a;
  for (int i = 0; i < kPoints; ++i) {
    a.x.push_back(static_cast<float>(i) / 10.0f - 8.0f);
  }
  ByAutograd([](const autograd::Variable& v) { return Relu(v); }, a.x, &a.relu,
             &a.relu_grad);
  ByAutograd([](const autograd::Variable& v) { return Sigmoid(v); }, a.x,
             &a.sigmoid, &a.sigmoid_grad);
  ByAutograd([](const autograd::Variable& v) { return Tanh(v); }, a.x, &a.tanh,
             &a.tanh_grad);
  for (float xf : a.x) {
    const double x = xf;
    const double s = 1.0 / (1.0 + std::exp(-x));
    const double t = (1.0 - std::exp(-2.0 * x)) / (1.0 + std::exp(-2.0 * x));
    a.relu_formula.push_back(static_cast<float>(std::max(x, 0.0)));
    a.relu_grad_formula.push_back(x > 0 ? 1.0f : 0.0f);
    a.sigmoid_formula.push_back(static_cast<float>(s));
    a.sigmoid_grad_formula.push_back(static_cast<float>(s * (1.0 - s)));
    a.tanh_formula.push_back(static_cast<float>(t));
    a.tanh_grad_formula.push_back(static_cast<float>(1.0 - t * t));
  }
  return a;
}

std::string ActivationsTable(const ActivationCurves& a) {
  std::string out =
      "# x relu relu' sigmoid sigmoid' tanh tanh' (dive autograd)\n";
  for (size_t i = 0; i < a.x.size(); ++i) {
    out += absl::StrFormat("%.1f %.6g %.6g %.6g %.6g %.6g %.6g\n", a.x[i],
                           a.relu[i], a.relu_grad[i], a.sigmoid[i],
                           a.sigmoid_grad[i], a.tanh[i], a.tanh_grad[i]);
  }
  return out;
}

AffineCollapse ComputeAffineCollapse(uint64_t seed) {
  ManualSeed(seed);  // the layers draw their initial weights from it
  nn::Linear hidden(4, 5), output(5, 3);
  AffineCollapse c;
  c.x = Normal({6, 4}, 0.0f, 1.0f);
  autograd::NoGradGuard no_grad;
  c.two_layers = output(hidden(autograd::Variable(c.x))).data();
  // dive's Linear computes x W^T + b with W [out, in]; the book's W_h is
  // hidden.weight()^T.
  const Tensor w_h = hidden.weight().data().Transpose(0, 1);
  const Tensor w_o = output.weight().data().Transpose(0, 1);
  c.w = ops::MatMul(w_h, w_o);
  c.b = ops::Add(ops::MatMul(hidden.bias().data().Reshape({1, 5}), w_o)
                     .Reshape({3}),
                 output.bias().data());
  c.one_layer = ops::Add(ops::MatMul(c.x, c.w), c.b);
  c.with_relu = output(Relu(hidden(autograd::Variable(c.x)))).data();
  return c;
}

}  // namespace dive::cheatsheet
