#include "distributed/sync_batch_norm.h"

#include <cmath>
#include <memory>
#include <vector>

#include "autograd/functions.h"
#include "autograd/grad_check.h"
#include "autograd/variable.h"
#include "distributed/process_group.h"
#include "gtest/gtest.h"
#include "nn/batch_norm.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::distributed {
namespace {

using autograd::Variable;

void ExpectNear(const Tensor& got, const Tensor& want, double tol,
                const char* what) {
  const std::vector<float> a = got.ToVector(), b = want.ToVector();
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i], b[i], tol * std::max(1.0f, std::abs(b[i])))
        << what << "[" << i << "]";
  }
}

// Rank 0 of a group of two whose other rank holds the same data: every sum
// doubles, so the global statistics are the local ones.
class MirrorGroup : public ProcessGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string backend() const override { return "mirror"; }
  absl::Status AllReduceSum(float* data, size_t n) override {
    for (size_t i = 0; i < n; ++i) data[i] *= 2;
    return absl::OkStatus();
  }
  absl::Status AllReduceSum(double* data, size_t n) override {
    ++double_calls;
    for (size_t i = 0; i < n; ++i) data[i] *= 2;
    return status;
  }
  absl::Status BroadcastBytes(void*, size_t, int) override {
    return absl::OkStatus();
  }
  absl::Status Barrier() override { return absl::OkStatus(); }
  [[noreturn]] void Abort(int code) override { std::exit(code); }
  int double_calls = 0;
  absl::Status status;
};

TEST(SyncBatchNormTest, OneRankIsBatchNorm) {
  Generator gen(5);
  for (bool relu : {false, true}) {
    for (const Shape& shape : {Shape{6, 3, 2, 5}, Shape{8, 4}}) {
      const int64_t c = shape[1];
      const Tensor x = gen.Normal(shape, 1, 2);
      const Tensor g = gen.Normal({c}, 1, 0.3f), b = gen.Normal({c}, 0, 1);
      const Tensor dy = gen.Normal(shape, 0, 1);
      Tensor rm1 = Tensor::Zeros({c}), rv1 = Tensor::Ones({c});
      Tensor rm2 = Tensor::Zeros({c}), rv2 = Tensor::Ones({c});
      Variable x1(x, true), g1(g, true), b1(b, true);
      Variable x2(x, true), g2(g, true), b2(b, true);
      LocalProcessGroup group;
      Variable y1 = SyncBatchNormTrain(group, x1, g1, b1, rm1, rv1, 0.1f,
                                       1e-5f, relu, nullptr);
      Variable y2 = autograd::BatchNorm(x2, g2, b2, rm2, rv2, true, 0.1f,
                                        1e-5f, relu);
      ExpectNear(y1.data(), y2.data(), 1e-5, "y");
      ExpectNear(rm1, rm2, 1e-6, "running_mean");
      ExpectNear(rv1, rv2, 1e-6, "running_var");
      y1.Backward(dy);
      y2.Backward(dy);
      ExpectNear(x1.grad(), x2.grad(), 1e-5, "dx");
      ExpectNear(g1.grad(), g2.grad(), 1e-5, "dgamma");
      ExpectNear(b1.grad(), b2.grad(), 1e-5, "dbeta");
    }
  }
}

TEST(SyncBatchNormTest, GradCheck) {
  Generator gen(9);
  LocalProcessGroup group;
  // Without the ReLU: central differences straddle its kink. The fused
  // ReLU's gradient is checked against autograd::BatchNorm's (itself
  // gradient-checked) in OneRankIsBatchNorm.
  for (bool relu : {false}) {
    const absl::Status s = autograd::GradCheck(
        [&](const std::vector<Variable>& in) {
          return SyncBatchNormTrain(group, in[0], in[1], in[2], Tensor(),
                                    Tensor(), 0.1f, 1e-5f, relu, nullptr);
        },
        {gen.Normal({4, 2, 3, 3}, 0.5f, 1), gen.Normal({2}, 1, 0.2f),
         gen.Normal({2}, 0.3f, 0.2f)});
    EXPECT_TRUE(s.ok()) << "relu " << relu << ": " << s;
  }
}

TEST(SyncBatchNormTest, TwoRanksWithTheSameDataAreBatchNorm) {
  // A mirrored second rank: the global batch is this one twice, with the
  // same mean and (biased) variance, and twice the count.
  Generator gen(3);
  const Tensor x = gen.Normal({4, 2, 3, 3}, 2, 3);
  const Tensor dy = gen.Normal({4, 2, 3, 3}, 0, 1);
  MirrorGroup group;
  Variable x1(x, true), g1(Tensor::Ones({2}), true), b1(Tensor::Zeros({2}), true);
  Variable x2(x, true), g2(Tensor::Ones({2}), true), b2(Tensor::Zeros({2}), true);
  Tensor rv1 = Tensor::Ones({2}), rv2 = Tensor::Ones({2});
  Variable y1 = SyncBatchNormTrain(group, x1, g1, b1, Tensor(), rv1, 1.0f,
                                   1e-5f, false, nullptr);
  Variable y2 = autograd::BatchNorm(x2, g2, b2, Tensor::Zeros({2}), rv2, true,
                                    1.0f, 1e-5f, false);
  ExpectNear(y1.data(), y2.data(), 1e-5, "y");
  // Unbiased over 72 values, not 36.
  const std::vector<float> a = rv1.ToVector(), b = rv2.ToVector();
  for (int c = 0; c < 2; ++c) {
    EXPECT_NEAR(a[c], b[c] * (35.0 / 36.0) * (72.0 / 71.0), 1e-5 * b[c]);
  }
  y1.Backward(dy);
  y2.Backward(dy);
  // Each rank's input gradient is that of the sum of both ranks' losses:
  // here twice its own loss's, spread over twice the count, so BatchNorm's.
  ExpectNear(x1.grad(), x2.grad(), 1e-5, "dx");
  ExpectNear(g1.grad(), g2.grad(), 1e-5, "dgamma (local)");
  EXPECT_EQ(group.double_calls, 2);  // one forward, one backward
}

TEST(SyncBatchNormTest, ConvertHooksTrainingCallsOnly) {
  MirrorGroup group;
  nn::BatchNorm2d bn(2);
  nn::BatchNorm2d plain(2);
  SyncBatchNormLayers layers = ConvertSyncBatchNorm(bn, group);
  EXPECT_EQ(layers.count(), 1);
  Generator gen(1);
  const Tensor x = gen.Normal({3, 2, 2, 2}, 1, 2);
  ExpectNear(bn(Variable(x)).data(), plain(Variable(x)).data(), 1e-5,
             "training");
  EXPECT_EQ(group.double_calls, 1);
  EXPECT_TRUE(bn.is_training());
  EXPECT_EQ(bn.num_batches_tracked(), 1);
  // Evaluation: plain BatchNorm on the running statistics (here those of
  // the mirrored global batch), no collective.
  ASSERT_TRUE(plain.LoadStateDict(bn.StateDict()).ok());
  bn.Eval();
  plain.Eval();
  ExpectNear(bn(Variable(x)).data(), plain(Variable(x)).data(), 1e-5, "eval");
  EXPECT_EQ(group.double_calls, 1);
  // Errors wait for TakeError; removing the hooks restores BatchNorm.
  bn.Train();
  group.status = absl::UnavailableError("rank 0: MPI_Allreduce failed");
  bn(Variable(x));
  EXPECT_EQ(layers.TakeError().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(layers.TakeError().ok());
  layers.Remove();
  bn(Variable(x));
  EXPECT_EQ(group.double_calls, 2);
  EXPECT_EQ(bn.num_batches_tracked(), 3);
}

TEST(SyncBatchNormTest, OneProcessConvertsNothing) {
  LocalProcessGroup group;
  nn::BatchNorm2d bn(2);
  EXPECT_EQ(ConvertSyncBatchNorm(bn, group).count(), 0);
}

}  // namespace
}  // namespace dive::distributed
