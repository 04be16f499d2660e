// File: cheatsheet/backprop.h
// -----------------------------------------------------------------------------
//
// Cheat sheet section 5 (the mathematics of backpropagation), computed once
// and shared by `backprop_test` and the `backprop` binary.
//
// One example x in R^d (a column vector), no biases, φ = tanh, softmax
// cross-entropy loss l and an L2 penalty (5.1):
//
//   z = W1 x,  h = φ(z),  o = W2 h,  L = l(o, y),
//   s = λ/2 (||W1||_F^2 + ||W2||_F^2),  J = L + s.
//
// Backward by hand with tensor operations (5.2):
//
//   ∂J/∂o  = softmax(o) - onehot(y)
//   ∂J/∂W2 = ∂J/∂o h^T + λ W2
//   ∂J/∂h  = W2^T ∂J/∂o
//   ∂J/∂z  = ∂J/∂h ⊙ φ'(z),   φ'(z) = 1 - tanh(z)^2
//   ∂J/∂W1 = ∂J/∂z x^T + λ W1
//   ∂J/∂x  = W1^T ∂J/∂z       (not in the book; it checks ∂J/∂z too)
//
// and the same gradients from dive's autograd.
//
// Example:
//
//   BackpropSheet b = RunBackprop();
//   // b.dj_dw1 (by hand) equals b.autograd_dw1.

#ifndef CHEATSHEET_BACKPROP_H_
#define CHEATSHEET_BACKPROP_H_

#include <cstdint>

#include "tensor/tensor.h"

namespace dive::cheatsheet {

struct BackpropSheet {
  // x [d, 1], W1 [h, d], W2 [q, h], label y, penalty λ.
  Tensor x, w1, w2;
  int64_t y = 0;
  float lambda = 0;
  // Forward: z, h [h, 1], o [q, 1]; L, s, J.
  Tensor z, h, o;
  float loss = 0, penalty = 0, objective = 0;
  // Backward by hand.
  Tensor dj_do, dj_dw2, dj_dh, dj_dz, dj_dw1, dj_dx;
  // Backward by autograd (J.Backward()), and J as autograd computed it.
  Tensor autograd_dw1, autograd_dw2, autograd_dx;
  float autograd_objective = 0;
};

// RunBackprop()
//
// d = 4, h = 5, q = 3, λ = 0.1, y = 1, x and the weights drawn from `seed`.
BackpropSheet RunBackprop(uint64_t seed = 6);

}  // namespace dive::cheatsheet

#endif  // CHEATSHEET_BACKPROP_H_
