#include "cheatsheet/dropout.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "glog/logging.h"
#include "models/mlp/mlp.h"
#include "optim/sgd.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace dive::cheatsheet {
namespace {

float Accuracy(nn::Module& net, const data::InMemoryDataset& data, int64_t n) {
  autograd::NoGradGuard no_grad;
  int64_t correct = 0;
  for (int64_t start = 0; start < n; start += 1000) {
    const int64_t end = std::min(n, start + 1000);
    std::vector<int64_t> idx(end - start);
    std::iota(idx.begin(), idx.end(), start);
    const Tensor pred =
        ops::Argmax(net(autograd::Variable(data.GatherImages(idx))).data(), 1);
    const std::vector<int64_t> p = pred.ToInt64Vector();
    for (size_t i = 0; i < idx.size(); ++i) {
      correct += p[i] == data.label(idx[i]);
    }
  }
  return static_cast<float>(correct) / static_cast<float>(n);
}

EpochResult OneEpoch(float dropout1, float dropout2,
                     const data::InMemoryDataset& train,
                     const data::InMemoryDataset& test, int64_t n,
                     int64_t n_test, const DropoutTrainOptions& options) {
  ManualSeed(options.seed);  // initial weights, then the dropout masks
  auto net = models::MlpDropout(28, dropout1, dropout2);
  optim::SGD sgd(net->Parameters(), {.lr = options.lr});
  Generator order_gen(options.seed + 1);
  const int64_t batch = options.batch_size;
  const std::vector<int64_t> order = order_gen.Permutation(n);
  EpochResult r;
  r.dropout1 = dropout1;
  r.dropout2 = dropout2;
  double loss_sum = 0;
  int64_t correct = 0;
  net->Train();
  for (int64_t start = 0; start < n; start += batch) {
    const std::vector<int64_t> idx(order.begin() + start,
                                   order.begin() + std::min(n, start + batch));
    const Tensor labels = train.GatherLabels(idx);
    autograd::Variable logits =
        (*net)(autograd::Variable(train.GatherImages(idx)));
    autograd::Variable loss = autograd::SoftmaxCrossEntropy(logits, labels);
    sgd.ZeroGrad();
    loss.Backward();
    sgd.Step();
    r.batch_losses.push_back(loss.data().item());
    loss_sum += static_cast<double>(r.batch_losses.back()) * idx.size();
    const std::vector<int64_t> pred =
        ops::Argmax(logits.data(), 1).ToInt64Vector();
    const std::vector<int64_t> y = labels.ToInt64Vector();
    for (size_t i = 0; i < y.size(); ++i) correct += pred[i] == y[i];
  }
  r.train_loss = static_cast<float>(loss_sum / n);
  r.train_acc = static_cast<float>(correct) / static_cast<float>(n);
  net->Eval();
  r.test_acc = Accuracy(*net, test, n_test);
  r.test_acc_again = Accuracy(*net, test, n_test);
  return r;
}

}  // namespace

DropoutExpectation MeasureDropoutExpectation(float p, int64_t masks,
                                             uint64_t seed) {
  DropoutExpectation e;
  e.p = p;
  e.masks = masks;
  e.h = {-2, -1, -0.5f, 0, 0.5f, 1, 2, 4};
  const int64_t d = static_cast<int64_t>(e.h.size());
  // Every row of [masks, d] gets its own independent mask.
  const Tensor h = Tensor::FromVector(e.h, {1, d}).Expand({masks, d});
  Generator gen(seed);
  const Tensor h_prime =
      dive::autograd::Dropout(autograd::Variable(h.Contiguous()), p, gen)
          .data();
  e.mean_h_prime = ops::Mean(h_prime, {0}).ToVector();
  const std::vector<float> v = h_prime.ToVector();
  int64_t zeros = 0;
  for (int64_t i = 0; i < masks; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      const float x = v[i * d + j], scaled = e.h[j] / (1.0f - p);
      if (x == 0.0f) {
        if (e.h[j] != 0.0f) ++zeros;  // h = 0 stays 0 whatever the mask
      } else if (std::fabs(x - scaled) > 1e-6f * std::fabs(scaled)) {
        ++e.other_values;
      }
    }
  }
  int64_t nonzero_h = 0;
  for (float x : e.h) nonzero_h += x != 0.0f;
  e.zero_fraction = static_cast<float>(zeros) / (masks * nonzero_h);
  return e;
}

Tensor DropoutOfArange(float p, uint64_t seed) {
  Generator gen(seed);
  return dive::autograd::Dropout(
             autograd::Variable(Tensor::Arange(16).Reshape({2, 8})), p, gen)
      .data();
}

DropoutComparison CompareDropout(const data::InMemoryDataset& train,
                                 const data::InMemoryDataset& test,
                                 const DropoutTrainOptions& options) {
  CHECK_GT(options.batch_size, 0) << "CompareDropout: batch_size";
  const auto limit = [](int64_t limit, int64_t size) {
    return limit > 0 ? std::min(limit, size) : size;
  };
  DropoutComparison c;
  c.train_examples = limit(options.train_limit, train.size());
  c.test_examples = limit(options.test_limit, test.size());
  c.without = OneEpoch(0.0f, 0.0f, train, test, c.train_examples,
                       c.test_examples, options);
  c.with = OneEpoch(0.2f, 0.5f, train, test, c.train_examples,
                    c.test_examples, options);
  return c;
}

}  // namespace dive::cheatsheet
