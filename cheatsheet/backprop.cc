#include "cheatsheet/backprop.h"

#include <cmath>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace dive::cheatsheet {

BackpropSheet RunBackprop(uint64_t seed) {
  constexpr int64_t kD = 4, kH = 5, kQ = 3;
  Generator gen(seed);
  BackpropSheet b;
  b.x = gen.Normal({kD, 1}, 0.0f, 1.0f);
  b.w1 = gen.Normal({kH, kD}, 0.0f, 0.7f);
  b.w2 = gen.Normal({kQ, kH}, 0.0f, 0.7f);
  b.y = 1;
  b.lambda = 0.1f;

  // ---- Forward (5.1) ----
  b.z = ops::MatMul(b.w1, b.x);
  b.h = ops::Tanh(b.z);
  b.o = ops::MatMul(b.w2, b.h);
  const Tensor y_hat = ops::Softmax(b.o, /*axis=*/0);
  b.loss = -std::log(y_hat.at<float>({b.y, 0}));
  b.penalty = b.lambda / 2 *
              (ops::Sum(ops::Square(b.w1)).item() +
               ops::Sum(ops::Square(b.w2)).item());
  b.objective = b.loss + b.penalty;

  // ---- Backward by hand (5.2) ----
  Tensor one_hot = Tensor::Zeros({kQ, 1});
  one_hot.data<float>()[b.y] = 1.0f;
  b.dj_do = ops::Sub(y_hat, one_hot);
  b.dj_dw2 = ops::Add(ops::MatMul(b.dj_do, b.h.Transpose(0, 1)),
                      ops::MulScalar(b.w2, b.lambda));
  b.dj_dh = ops::MatMul(b.w2.Transpose(0, 1), b.dj_do);
  const Tensor phi_prime =
      ops::Sub(Tensor::Ones(b.h.shape()), ops::Square(b.h));  // 1 - tanh^2
  b.dj_dz = ops::Mul(b.dj_dh, phi_prime);
  b.dj_dw1 = ops::Add(ops::MatMul(b.dj_dz, b.x.Transpose(0, 1)),
                      ops::MulScalar(b.w1, b.lambda));
  b.dj_dx = ops::MatMul(b.w1.Transpose(0, 1), b.dj_dz);

  // ---- Backward by autograd ----
  autograd::Variable x(b.x.Clone(), true), w1(b.w1.Clone(), true),
      w2(b.w2.Clone(), true);
  const autograd::Variable o = MatMul(w2, Tanh(MatMul(w1, x)));
  const autograd::Variable loss = SoftmaxCrossEntropy(
      Reshape(o, {1, kQ}), Tensor::FromInt64Vector({b.y}, {1}));
  autograd::Variable objective =
      loss + (Sum(Square(w1)) + Sum(Square(w2))) * (b.lambda / 2);
  b.autograd_objective = objective.data().item();
  objective.Backward();
  b.autograd_dw1 = w1.grad();
  b.autograd_dw2 = w2.grad();
  b.autograd_dx = x.grad();
  return b;
}

}  // namespace dive::cheatsheet
