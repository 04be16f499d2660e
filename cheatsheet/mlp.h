// File: cheatsheet/mlp.h
// -----------------------------------------------------------------------------
//
// Cheat sheet section 2 (multilayer perceptron, 2.1-2.4), computed once and
// shared by `mlp_test` and the `mlp` binary.
//
//   2.3  ReLU(x) = max(x, 0)            ReLU'(x)    = 1 if x > 0 else 0
//        sigmoid(x) = 1/(1 + exp(-x))   sigmoid'(x) = sigmoid(x)(1 - sigmoid(x))
//        tanh(x) = (1 - exp(-2x))/(1 + exp(-2x))   tanh'(x) = 1 - tanh(x)^2
//        The derivatives come from dive's autograd (Backward of the sum) and
//        are set beside the closed forms, on the book's grid [-8, 8].
//   2.2  Without an activation, H = X W_h + b_h, O = H W_o + b_o is one
//        affine map: O = X (W_h W_o) + (b_h W_o + b_o).
//
// Example:
//
//   ActivationCurves a = ComputeActivations();
//   // a.relu_grad[i] is d ReLU / dx at a.x[i], from autograd.

#ifndef CHEATSHEET_MLP_H_
#define CHEATSHEET_MLP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace dive::cheatsheet {

struct ActivationCurves {
  std::vector<float> x;
  // By dive: nn's functions and their autograd gradients.
  std::vector<float> relu, relu_grad, sigmoid, sigmoid_grad, tanh, tanh_grad;
  // By the cheat sheet's closed forms (in double, rounded to float).
  std::vector<float> relu_formula, relu_grad_formula, sigmoid_formula,
      sigmoid_grad_formula, tanh_formula, tanh_grad_formula;
};

// ComputeActivations()
//
// The curves at x = -8, -7.9, ..., 8 (161 points, x = i / 10 - 8).
ActivationCurves ComputeActivations();

// ActivationsTable()
//
// The curves as gnuplot data: a header comment, then one line per x with
// x, relu, relu', sigmoid, sigmoid', tanh, tanh' (the columns the fixed
// script `kActivationsScript` plots).
std::string ActivationsTable(const ActivationCurves& curves);

// The gnuplot script drawing "activations.dat" as the book does: each
// function and its gradient, in a 2 x 3 grid.
extern const char kActivationsScript[];

struct AffineCollapse {
  // X [6, 4] through Linear(4, 5) then Linear(5, 3), no activation.
  Tensor x, two_layers;
  // The single affine map W = W_h W_o [4, 3], b = b_h W_o + b_o [3], in the
  // book's row-vector convention (dive's Linear stores W^T), and X W + b.
  Tensor w, b, one_layer;
  // The same two layers with a ReLU between them, and X W + b for comparison.
  Tensor with_relu;
};

AffineCollapse ComputeAffineCollapse(uint64_t seed = 2);

}  // namespace dive::cheatsheet

#endif  // CHEATSHEET_MLP_H_
