#include "cheatsheet/weight_decay.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "autograd/functions.h"
#include "autograd/variable.h"
#include "glog/logging.h"
#include "optim/sgd.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace dive::cheatsheet {
namespace {

// 1/2 mean of (x w + b - y)^2.
autograd::Variable HalfMse(const autograd::Variable& x,
                           const autograd::Variable& w,
                           const autograd::Variable& b,
                           const autograd::Variable& y) {
  return Mean(Square(MatMul(x, w) + b - y)) * 0.5f;
}

float EvalLoss(const Tensor& x, const Tensor& y, const autograd::Variable& w,
               const autograd::Variable& b) {
  autograd::NoGradGuard no_grad;
  return HalfMse(autograd::Variable(x), w, b, autograd::Variable(y))
      .data()
      .item();
}

}  // namespace

WeightDecayStep CheckWeightDecayStep(uint64_t seed) {
  constexpr int64_t kBatch = 5;
  Generator gen(seed);
  WeightDecayStep s;
  s.w = gen.Normal({2, 1}, 0.0f, 1.0f);
  s.b = gen.Normal({1}, 0.0f, 1.0f);
  s.x = gen.Normal({kBatch, 2}, 0.0f, 1.0f);
  s.y = gen.Normal({kBatch, 1}, 0.0f, 1.0f);
  s.eta = 0.1f;
  s.lambda = 3.0f;

  // The document's formula, element by element.
  const float w1 = s.w.at<float>({0, 0}), w2 = s.w.at<float>({1, 0});
  const float b = s.b.at<float>({0});
  double sum1 = 0, sum2 = 0, sum_b = 0;
  for (int64_t i = 0; i < kBatch; ++i) {
    const double x1 = s.x.at<float>({i, 0}), x2 = s.x.at<float>({i, 1});
    const double residual = x1 * w1 + x2 * w2 + b - s.y.at<float>({i, 0});
    sum1 += x1 * residual;
    sum2 += x2 * residual;
    sum_b += residual;
  }
  const double shrink = 1.0 - s.eta * s.lambda / kBatch;
  const double step = s.eta / kBatch;
  s.w_by_formula = Tensor::FromVector(
      {static_cast<float>(shrink * w1 - step * sum1),
       static_cast<float>(shrink * w2 - step * sum2)},
      {2, 1});
  s.b_by_formula = Tensor::FromVector({static_cast<float>(b - step * sum_b)},
                                      {1});

  // dive's SGD: weight_decay = lambda / |B| on w, none on b.
  {
    autograd::Variable w(s.w.Clone(), true), bias(s.b.Clone(), true);
    optim::SGD sgd({w}, {.lr = s.eta, .weight_decay = s.lambda / kBatch});
    sgd.AddParamGroup({.params = {bias}, .lr = s.eta, .weight_decay = 0.0f});
    autograd::Variable loss =
        HalfMse(autograd::Variable(s.x), w, bias, autograd::Variable(s.y));
    loss.Backward();
    sgd.Step();
    s.w_by_weight_decay = w.data();
    s.b_by_weight_decay = bias.data();
  }
  // Autograd through the penalized loss l + lambda / (2 |B|) ||w||^2.
  {
    autograd::Variable w(s.w.Clone(), true), bias(s.b.Clone(), true);
    optim::SGD sgd({w, bias}, {.lr = s.eta});
    autograd::Variable loss =
        HalfMse(autograd::Variable(s.x), w, bias, autograd::Variable(s.y)) +
        Sum(Square(w)) * (s.lambda / (2.0f * kBatch));
    loss.Backward();
    sgd.Step();
    s.w_by_penalty = w.data();
    s.b_by_penalty = bias.data();
  }
  return s;
}

WeightDecayRun TrainWeightDecay(float lambda, uint64_t seed) {
  constexpr int64_t kTrain = 20, kTest = 100, kInputs = 200, kEpochs = 100;
  constexpr float kLr = 0.003f;
  Generator gen(seed);
  // y = 0.05 + 0.01 * sum(x) + noise.
  const Tensor features = gen.Normal({kTrain + kTest, kInputs}, 0.0f, 1.0f);
  const Tensor labels = ops::Add(
      ops::AddScalar(ops::MulScalar(ops::Sum(features, {1}, true), 0.01f),
                     0.05f),
      gen.Normal({kTrain + kTest, 1}, 0.0f, 0.01f));
  const Tensor train_x = features.Slice(0, 0, kTrain).Contiguous();
  const Tensor train_y = labels.Slice(0, 0, kTrain).Contiguous();
  const Tensor test_x = features.Slice(0, kTrain, kTrain + kTest).Contiguous();
  const Tensor test_y = labels.Slice(0, kTrain, kTrain + kTest).Contiguous();

  autograd::Variable w(gen.Normal({kInputs, 1}, 0.0f, 1.0f),
                       /*requires_grad=*/true);
  autograd::Variable b(Tensor::Zeros({1}), /*requires_grad=*/true);
  // |B| = 1: weight_decay = lambda / |B| = lambda, on w only.
  optim::SGD sgd({w}, {.lr = kLr, .weight_decay = lambda});
  sgd.AddParamGroup({.params = {b}, .lr = kLr, .weight_decay = 0.0f});

  WeightDecayRun run;
  run.lambda = lambda;
  for (int64_t epoch = 0; epoch < kEpochs; ++epoch) {
    for (int64_t i = 0; i < kTrain; ++i) {
      sgd.ZeroGrad();
      autograd::Variable loss =
          HalfMse(autograd::Variable(train_x.Slice(0, i, i + 1)), w, b,
                  autograd::Variable(train_y.Slice(0, i, i + 1)));
      loss.Backward();
      sgd.Step();
    }
    run.train_loss.push_back(EvalLoss(train_x, train_y, w, b));
    run.test_loss.push_back(EvalLoss(test_x, test_y, w, b));
  }
  run.w_norm = std::sqrt(ops::Sum(ops::Square(w.data())).item());
  return run;
}

std::string WeightDecayTable(const WeightDecayRun& a, const WeightDecayRun& b) {
  CHECK_EQ(a.train_loss.size(), b.train_loss.size());
  std::string out = absl::StrFormat(
      "# epoch train(lambda=%g) test(lambda=%g) train(lambda=%g) "
      "test(lambda=%g)\n",
      a.lambda, a.lambda, b.lambda, b.lambda);
  for (size_t e = 0; e < a.train_loss.size(); ++e) {
    out += absl::StrFormat("%d %.6g %.6g %.6g %.6g\n", e + 1, a.train_loss[e],
                           a.test_loss[e], b.train_loss[e], b.test_loss[e]);
  }
  return out;
}

const char kWeightDecayScript[] =
    "set multiplot layout 1,2\n"
    "set logscale y\n"
    "set format y '10^{%L}'\n"
    "set grid\n"
    "set xlabel 'epochs'\n"
    "set ylabel 'loss'\n"
    "set key center right\n"
    "set title 'lambda = 0 (no weight decay)'\n"
    "plot 'weight_decay.dat' using 1:2 with lines lw 2 title 'train', \\\n"
    "     'weight_decay.dat' using 1:3 with lines lw 2 dt 2 title 'test'\n"
    "set title 'lambda = 3'\n"
    "plot 'weight_decay.dat' using 1:4 with lines lw 2 title 'train', \\\n"
    "     'weight_decay.dat' using 1:5 with lines lw 2 dt 2 title 'test'\n"
    "unset multiplot\n";

}  // namespace dive::cheatsheet
