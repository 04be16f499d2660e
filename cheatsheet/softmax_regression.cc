#include "cheatsheet/softmax_regression.h"

#include <cmath>
#include <vector>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "optim/sgd.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace dive::cheatsheet {

std::vector<float> SoftmaxOfRow(const std::vector<float>& logits) {
  double total = 0;
  for (float o : logits) total += std::exp(static_cast<double>(o));
  std::vector<float> p;
  p.reserve(logits.size());
  for (float o : logits) {
    p.push_back(static_cast<float>(std::exp(static_cast<double>(o)) / total));
  }
  return p;
}

SoftmaxRegressionSheet RunSoftmaxRegression(uint64_t seed) {
  constexpr int64_t kN = 4, kD = 3, kC = 3;
  Generator gen(seed);
  SoftmaxRegressionSheet s;
  s.x = gen.Normal({kN, kD}, 0.0f, 1.0f);
  s.w = gen.Normal({kD, kC}, 0.0f, 1.0f);
  s.b = gen.Normal({kC}, 0.0f, 0.5f);
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < kN; ++i) labels.push_back(gen.NextIndex(kC));
  s.labels = Tensor::FromInt64Vector(labels, {kN});
  s.lr = 0.5f;

  // 1.2: one row vector at a time, o = x W + b written out as sums.
  std::vector<float> single;
  for (int64_t i = 0; i < kN; ++i) {
    std::vector<float> o(kC);
    for (int64_t c = 0; c < kC; ++c) {
      double sum = s.b.at<float>({c});
      for (int64_t j = 0; j < kD; ++j) {
        sum += static_cast<double>(s.x.at<float>({i, j})) * s.w.at<float>({j, c});
      }
      o[c] = static_cast<float>(sum);
    }
    for (float p : SoftmaxOfRow(o)) single.push_back(p);
  }
  s.y_hat_single = Tensor::FromVector(single, {kN, kC});

  // 1.3: the whole batch; b is broadcast over the rows.
  const Tensor logits = ops::Add(ops::MatMul(s.x, s.w), s.b);
  s.y_hat_batch = ops::Softmax(logits, /*axis=*/1);

  // 1.4: cross-entropy, only the true class's probability matters.
  double total = 0;
  for (int64_t i = 0; i < kN; ++i) {
    const float l = -std::log(s.y_hat_batch.at<float>({i, labels[i]}));
    s.ce_by_formula.push_back(l);
    total += l;
  }
  s.ce_mean_by_formula = static_cast<float>(total / kN);

  // 1.4: the update formula, W + alpha/|B| X^T (Y - Y_hat).
  std::vector<float> one_hot(kN * kC, 0.0f);
  for (int64_t i = 0; i < kN; ++i) one_hot[i * kC + labels[i]] = 1.0f;
  const Tensor residual =
      ops::Sub(Tensor::FromVector(one_hot, {kN, kC}), s.y_hat_batch);
  const float scale = s.lr / static_cast<float>(kN);
  s.w_by_formula = ops::Add(
      s.w, ops::MulScalar(ops::MatMul(s.x.Transpose(0, 1), residual), scale));
  s.b_by_formula = ops::Add(s.b, ops::MulScalar(ops::Sum(residual, {0}), scale));

  // The same step with dive: autograd through SoftmaxCrossEntropy, then SGD.
  autograd::Variable w(s.w.Clone(), /*requires_grad=*/true);
  autograd::Variable b(s.b.Clone(), /*requires_grad=*/true);
  autograd::Variable loss =
      SoftmaxCrossEntropy(MatMul(autograd::Variable(s.x), w) + b, s.labels);
  s.ce_by_dive = loss.data().item();
  optim::SGD sgd({w, b}, {.lr = s.lr});
  sgd.ZeroGrad();
  loss.Backward();
  sgd.Step();
  s.w_by_sgd = w.data();
  s.b_by_sgd = b.data();
  return s;
}

}  // namespace dive::cheatsheet
