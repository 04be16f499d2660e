#include "tensor/batch_norm.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tensor/testing.h"

namespace dive {
namespace {

// x as [N, C, S] with S = H * W (1 for [N, C]).
struct Dims3 {
  int64_t n, c, s;
  explicit Dims3(const Shape& shape)
      : n(shape[0]),
        c(shape[1]),
        s(shape.rank() == 4 ? shape[2] * shape[3] : 1) {}
  int64_t At(int64_t i, int64_t c_, int64_t k) const {
    return (i * c + c_) * s + k;
  }
};

// Double-precision training forward: y, the batch mean and biased variance.
std::vector<double> RefTrainForward(const Shape& shape,
                                    const std::vector<double>& x,
                                    const std::vector<double>& gamma,
                                    const std::vector<double>& beta, double eps,
                                    std::vector<double>* mean_out = nullptr,
                                    std::vector<double>* var_out = nullptr) {
  const Dims3 d(shape);
  const double m = static_cast<double>(d.n * d.s);
  std::vector<double> y(x.size()), mean(d.c, 0.0), var(d.c, 0.0);
  for (int64_t c = 0; c < d.c; ++c) {
    for (int64_t i = 0; i < d.n; ++i)
      for (int64_t k = 0; k < d.s; ++k) mean[c] += x[d.At(i, c, k)];
    mean[c] /= m;
    for (int64_t i = 0; i < d.n; ++i)
      for (int64_t k = 0; k < d.s; ++k) {
        const double t = x[d.At(i, c, k)] - mean[c];
        var[c] += t * t;
      }
    var[c] /= m;
    const double inv_std = 1.0 / std::sqrt(var[c] + eps);
    for (int64_t i = 0; i < d.n; ++i)
      for (int64_t k = 0; k < d.s; ++k) {
        const int64_t j = d.At(i, c, k);
        y[j] = gamma[c] * (x[j] - mean[c]) * inv_std + beta[c];
      }
  }
  if (mean_out != nullptr) *mean_out = mean;
  if (var_out != nullptr) *var_out = var;
  return y;
}

// ---- Training forward -------------------------------------------------------

// The statistics BatchNormTrainForward saves for x match a double-precision
// computation.
void CheckSavedStatistics(const Tensor& x, const BatchNormSaved& saved) {
  const int64_t c = x.dim(1);
  std::vector<double> ref_mean, ref_var;
  RefTrainForward(x.shape(), ToDouble(x), std::vector<double>(c, 1.0),
                  std::vector<double>(c, 0.0), 1e-5, &ref_mean, &ref_var);
  std::vector<double> ref_inv_std(c);
  for (int64_t ch = 0; ch < c; ++ch) {
    ref_inv_std[ch] = 1.0 / std::sqrt(ref_var[ch] + 1e-5);
  }
  ASSERT_EQ(saved.mean.shape(), Shape({c}));
  ASSERT_EQ(saved.inv_std.shape(), Shape({c}));
  ExpectClose(saved.mean, ref_mean, 1e-5, 1e-6, "saved.mean");
  ExpectClose(saved.inv_std, ref_inv_std, 1e-6, 1e-6, "saved.inv_std");
}

void CheckNormalized(const Shape& shape, uint64_t seed) {
  SCOPED_TRACE("x " + shape.ToString());
  Generator gen(seed);
  const Tensor x = gen.Normal(shape, 3.0f, 2.0f);
  const int64_t c = shape[1];
  BatchNormSaved saved;
  const Tensor y =
      BatchNormTrainForward(x, Tensor::Ones({c}), Tensor::Zeros({c}), Tensor(),
                            Tensor(), 0.1f, 1e-5f, &saved);
  ASSERT_EQ(y.shape(), shape);
  const Dims3 d(shape);
  const std::vector<double> yd = ToDouble(y);
  const double m = static_cast<double>(d.n * d.s);
  for (int64_t ch = 0; ch < d.c; ++ch) {
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < d.n; ++i)
      for (int64_t k = 0; k < d.s; ++k) mean += yd[d.At(i, ch, k)];
    mean /= m;
    for (int64_t i = 0; i < d.n; ++i)
      for (int64_t k = 0; k < d.s; ++k) {
        const double t = yd[d.At(i, ch, k)] - mean;
        var += t * t;
      }
    var /= m;
    EXPECT_NEAR(mean, 0.0, 1e-5) << "channel " << ch;
    EXPECT_NEAR(var, 1.0, 1e-4) << "channel " << ch;  // var / (var + eps)
  }
  CheckSavedStatistics(x, saved);
}

// The statistics stay accurate where the mean is far larger than the spread
// (a sum of squares minus the squared mean would lose every digit of the
// variance here), on planes that fill the 16 float lanes exactly (24 x 24),
// leave a tail (7 x 9) or are shorter than the lanes (3 x 3).
TEST(BatchNorm, TrainForwardStatisticsOfAnOffsetInput) {
  const struct {
    Shape shape;
    float mean, std;
  } cases[] = {{{16, 4, 24, 24}, 1000.0f, 0.5f},
               {{8, 3, 7, 9}, -500.0f, 0.25f},
               {{32, 5, 3, 3}, 200.0f, 1.0f}};
  uint64_t seed = 6;
  for (const auto& k : cases) {
    SCOPED_TRACE("x " + k.shape.ToString() + " ~ N(" + std::to_string(k.mean) +
                 ", " + std::to_string(k.std) + ")");
    const Tensor x = Generator(seed++).Normal(k.shape, k.mean, k.std);
    BatchNormSaved saved;
    BatchNormTrainForward(x, Tensor(), Tensor(), Tensor(), Tensor(), 0.1f,
                          1e-5f, &saved);
    CheckSavedStatistics(x, saved);
  }
  // bf16 activations (coarse values, many of them equal), against the
  // double statistics of the same values.
  for (const Shape& shape : {Shape({10, 64, 8, 8}), Shape({10, 32, 2, 2}),
                             Shape({10, 16, 24, 24})}) {
    SCOPED_TRACE("bf16 x " + shape.ToString());
    const Tensor x16 =
        Generator(seed++).Normal(shape, 0.5f, 1.0f).To(DType::kBfloat16);
    BatchNormSaved saved;
    BatchNormTrainForward(x16, Tensor(), Tensor(), Tensor(), Tensor(), 0.1f,
                          1e-5f, &saved);
    CheckSavedStatistics(x16.To(DType::kFloat32), saved);
  }
}

TEST(BatchNorm, TrainForwardNormalizesEachChannel) {
  CheckNormalized({8, 3, 5, 5}, 1);
  CheckNormalized({64, 6, 12, 12}, 2);  // parallel over channels
  CheckNormalized({16, 5}, 3);          // fully connected
  CheckNormalized({300, 100}, 4);       // fully connected, parallel
  CheckNormalized({2, 1}, 5);
}

TEST(BatchNorm, TrainForwardAppliesGammaAndBeta) {
  for (const Shape& shape : {Shape{6, 3, 4, 5}, Shape{10, 3}}) {
    SCOPED_TRACE("x " + shape.ToString());
    Generator gen(11);
    const Tensor x = gen.Normal(shape, -1.0f, 3.0f);
    const Tensor gamma = Tensor::FromVector({2.0f, 0.5f, -1.0f}, {3});
    const Tensor beta = Tensor::FromVector({1.0f, -1.0f, 0.5f}, {3});
    BatchNormSaved saved;
    const Tensor y = BatchNormTrainForward(x, gamma, beta, Tensor(), Tensor(),
                                           0.1f, 1e-5f, &saved);
    ExpectClose(y,
                RefTrainForward(shape, ToDouble(x), ToDouble(gamma),
                                ToDouble(beta), 1e-5),
                1e-5, 1e-5);
  }
}

TEST(BatchNorm, UndefinedGammaAndBetaMeanIdentityAffine) {
  Generator gen(12);
  const Tensor x = gen.Normal({4, 2, 3, 3}, 0, 1);
  BatchNormSaved s1, s2;
  const Tensor y1 = BatchNormTrainForward(x, Tensor(), Tensor(), Tensor(),
                                          Tensor(), 0.1f, 1e-5f, &s1);
  const Tensor y2 =
      BatchNormTrainForward(x, Tensor::Ones({2}), Tensor::Zeros({2}), Tensor(),
                            Tensor(), 0.1f, 1e-5f, &s2);
  ExpectClose(y1, ToDouble(y2), 0, 0);
}

TEST(BatchNorm, NonContiguousInput) {
  Generator gen(13);
  // [N, C, W, H] storage viewed as [N, C, H, W].
  const Tensor x = gen.Normal({4, 3, 5, 6}, 0, 1).Transpose(2, 3);
  ASSERT_FALSE(x.is_contiguous());
  const Tensor gamma = gen.Normal({3}, 1, 0.1f);
  const Tensor beta = gen.Normal({3}, 0, 0.1f);
  BatchNormSaved s;
  const Tensor y = BatchNormTrainForward(x, gamma, beta, Tensor(), Tensor(),
                                         0.1f, 1e-5f, &s);
  ExpectClose(y,
              RefTrainForward(x.shape(), ToDouble(x), ToDouble(gamma),
                              ToDouble(beta), 1e-5),
              1e-5, 1e-5);
}

// ---- Running statistics -----------------------------------------------------

TEST(BatchNorm, RunningStatsUseMomentumAndUnbiasedVariance) {
  // Values 1, 2, 3, 4 in one channel, as [4, 1] and as [2, 1, 1, 2]:
  // mean 2.5, biased variance 1.25, unbiased variance 5/3.
  for (const Shape& shape : {Shape{4, 1}, Shape{2, 1, 1, 2}}) {
    SCOPED_TRACE("x " + shape.ToString());
    const Tensor x = Tensor::FromVector({1, 2, 3, 4}, shape);
    Tensor running_mean = Tensor::Zeros({1});
    Tensor running_var = Tensor::Ones({1});
    BatchNormSaved saved;
    const Tensor y =
        BatchNormTrainForward(x, Tensor::Ones({1}), Tensor::Zeros({1}),
                              running_mean, running_var, 0.1f, 0.0f, &saved);
    // Normalized with the biased variance.
    const double s = std::sqrt(1.25);
    ExpectClose(y, {-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s}, 1e-6, 1e-6);
    EXPECT_NEAR(saved.mean.item(), 2.5, 1e-6);
    EXPECT_NEAR(saved.inv_std.item(), 1.0 / s, 1e-6);
    EXPECT_NEAR(running_mean.item(), 0.25, 1e-6);
    EXPECT_NEAR(running_var.item(), 0.9 + 0.1 * 5.0 / 3.0, 1e-6);
    // A second step compounds.
    BatchNormTrainForward(x, Tensor::Ones({1}), Tensor::Zeros({1}),
                          running_mean, running_var, 0.1f, 0.0f, &saved);
    EXPECT_NEAR(running_mean.item(), 0.9 * 0.25 + 0.25, 1e-6);
    EXPECT_NEAR(running_var.item(),
                0.9 * (0.9 + 0.1 * 5.0 / 3.0) + 0.1 * 5.0 / 3.0, 1e-6);
  }
}

TEST(BatchNorm, RunningStatsPerChannelAndThroughViews) {
  Generator gen(21);
  const Shape shape{5, 3, 4, 4};
  const Tensor x = gen.Normal(shape, 2.0f, 3.0f);
  std::vector<double> mean, var;
  RefTrainForward(shape, ToDouble(x), {1, 1, 1}, {0, 0, 0}, 1e-5, &mean, &var);
  const double m = 5 * 16;
  // Running buffers that are strided views into larger tensors.
  Tensor mean_buf = Tensor::FromVector({1, -7, 2, -7, 3, -7}, {6});
  Tensor var_buf = Tensor::FromVector({4, -7, 5, -7, 6, -7}, {6});
  Tensor running_mean = mean_buf.Slice(0, 0, 6, 2);
  Tensor running_var = var_buf.Slice(0, 0, 6, 2);
  BatchNormSaved saved;
  BatchNormTrainForward(x, Tensor(), Tensor(), running_mean, running_var, 0.3f,
                        1e-5f, &saved);
  std::vector<double> want_mean(6, -7.0), want_var(6, -7.0);
  for (int c = 0; c < 3; ++c) {
    want_mean[2 * c] = 0.7 * (c + 1) + 0.3 * mean[c];
    want_var[2 * c] = 0.7 * (c + 4) + 0.3 * var[c] * m / (m - 1);
  }
  ExpectClose(mean_buf, want_mean, 1e-5, 1e-5, "running_mean");
  ExpectClose(var_buf, want_var, 1e-5, 1e-5, "running_var");
}

// ---- Eval forward -----------------------------------------------------------

TEST(BatchNorm, EvalForwardByHand) {
  const Tensor x = Tensor::FromVector({1, 2, 3, 4}, {2, 2});
  const Tensor y = BatchNormEvalForward(
      x, Tensor::FromVector({1, 2}, {2}), Tensor::FromVector({0, 1}, {2}),
      Tensor::FromVector({1, 2}, {2}), Tensor::FromVector({4, 0.25f}, {2}),
      0.0f);
  // Channel 0: (x - 1) / 2. Channel 1: 2 * (x - 2) / 0.5 + 1.
  ExpectClose(y, {0, 1, 1, 9}, 1e-6, 1e-6);
}

TEST(BatchNorm, EvalForwardFormula) {
  for (const Shape& shape :
       {Shape{7, 4, 3, 5}, Shape{9, 4}, Shape{40, 4, 12, 12}}) {
    SCOPED_TRACE("x " + shape.ToString());
    Generator gen(31);
    const Tensor x = gen.Normal(shape, 0, 2);
    const Tensor gamma = gen.Normal({4}, 1, 0.5f);
    const Tensor beta = gen.Normal({4}, 0, 1);
    const Tensor rm = gen.Normal({4}, 0, 1);
    const Tensor rv = gen.Uniform({4}, 0.5f, 2.0f);
    const float eps = 1e-3f;
    const Tensor y = BatchNormEvalForward(x, gamma, beta, rm, rv, eps);
    const std::vector<double> xd = ToDouble(x), g = ToDouble(gamma),
                              b = ToDouble(beta), m = ToDouble(rm),
                              v = ToDouble(rv);
    const Dims3 d(shape);
    std::vector<double> want(xd.size());
    for (int64_t i = 0; i < d.n; ++i)
      for (int64_t c = 0; c < d.c; ++c)
        for (int64_t k = 0; k < d.s; ++k) {
          const int64_t j = d.At(i, c, k);
          want[j] = g[c] * (xd[j] - m[c]) / std::sqrt(v[c] + eps) + b[c];
        }
    ExpectClose(y, want, 1e-5, 1e-5);
  }
}

// ---- Backward ---------------------------------------------------------------

// Closed-form gradients in double, for the larger shapes.
void RefBackward(const Shape& shape, const std::vector<double>& x,
                 const std::vector<double>& gamma,
                 const std::vector<double>& dy, double eps,
                 std::vector<double>* dx, std::vector<double>* dgamma,
                 std::vector<double>* dbeta) {
  std::vector<double> mean, var;
  RefTrainForward(shape, x, gamma, std::vector<double>(gamma.size(), 0.0), eps,
                  &mean, &var);
  const Dims3 d(shape);
  const double m = static_cast<double>(d.n * d.s);
  dx->assign(x.size(), 0.0);
  dgamma->assign(d.c, 0.0);
  dbeta->assign(d.c, 0.0);
  for (int64_t c = 0; c < d.c; ++c) {
    const double inv_std = 1.0 / std::sqrt(var[c] + eps);
    for (int64_t i = 0; i < d.n; ++i)
      for (int64_t k = 0; k < d.s; ++k) {
        const int64_t j = d.At(i, c, k);
        (*dbeta)[c] += dy[j];
        (*dgamma)[c] += dy[j] * (x[j] - mean[c]) * inv_std;
      }
    for (int64_t i = 0; i < d.n; ++i)
      for (int64_t k = 0; k < d.s; ++k) {
        const int64_t j = d.At(i, c, k);
        const double xhat = (x[j] - mean[c]) * inv_std;
        (*dx)[j] = gamma[c] * inv_std / m *
                   (m * dy[j] - (*dbeta)[c] - xhat * (*dgamma)[c]);
      }
  }
}

// L(x, gamma, beta) = sum(dy * y) with y from the double reference; the
// kernel's gradients must match its central differences.
TEST(BatchNorm, BackwardMatchesFiniteDifferences) {
  uint64_t seed = 50;
  for (const Shape& shape :
       {Shape{4, 3, 2, 2}, Shape{6, 4}, Shape{2, 2, 3, 1}}) {
    SCOPED_TRACE("x " + shape.ToString());
    Generator gen(seed++);
    const int64_t c = shape[1];
    const Tensor x = gen.Normal(shape, 1, 2);
    const Tensor gamma = gen.Normal({c}, 1, 0.5f);
    const Tensor beta = gen.Normal({c}, 0, 1);
    const Tensor dy = gen.Normal(shape, 0, 1);
    const float eps = 1e-5f;
    BatchNormSaved saved;
    BatchNormTrainForward(x, gamma, beta, Tensor(), Tensor(), 0.1f, eps,
                          &saved);
    Tensor dx, dgamma, dbeta;
    BatchNormBackward(dy, x, gamma, saved, &dx, &dgamma, &dbeta);
    ASSERT_EQ(dx.shape(), shape);
    ASSERT_EQ(dgamma.shape(), Shape({c}));
    ASSERT_EQ(dbeta.shape(), Shape({c}));

    std::vector<double> xd = ToDouble(x), gd = ToDouble(gamma),
                        bd = ToDouble(beta);
    const std::vector<double> dyd = ToDouble(dy);
    auto loss = [&]() {
      const std::vector<double> y = RefTrainForward(shape, xd, gd, bd, eps);
      double s = 0.0;
      for (size_t i = 0; i < y.size(); ++i) s += dyd[i] * y[i];
      return s;
    };
    auto numeric = [&](std::vector<double>* v) {
      return CentralDifference(loss, v, 1e-5);
    };
    ExpectClose(dx, numeric(&xd), 1e-4, 1e-3, "dx");
    ExpectClose(dgamma, numeric(&gd), 1e-4, 1e-4, "dgamma");
    ExpectClose(dbeta, numeric(&bd), 1e-4, 1e-4, "dbeta");
  }
}

TEST(BatchNorm, BackwardMatchesClosedFormOnLargerInputs) {
  uint64_t seed = 60;
  for (const Shape& shape :
       {Shape{32, 6, 14, 14}, Shape{256, 84}, Shape{3, 5},
        Shape{32, 64, 3, 3}}) {  // planes of 9, viewed as rows, in parallel
    SCOPED_TRACE("x " + shape.ToString());
    Generator gen(seed++);
    const int64_t c = shape[1];
    const Tensor x = gen.Normal(shape, 0.5f, 1.5f);
    const Tensor gamma = gen.Normal({c}, 1, 0.5f);
    const Tensor dy = gen.Normal(shape, 0, 1);
    BatchNormSaved saved;
    BatchNormTrainForward(x, gamma, Tensor::Zeros({c}), Tensor(), Tensor(),
                          0.1f, 1e-5f, &saved);
    Tensor dx, dgamma, dbeta;
    BatchNormBackward(dy, x, gamma, saved, &dx, &dgamma, &dbeta);
    std::vector<double> rdx, rdg, rdb;
    RefBackward(shape, ToDouble(x), ToDouble(gamma), ToDouble(dy), 1e-5, &rdx,
                &rdg, &rdb);
    ExpectClose(dx, rdx, 1e-4, 1e-3, "dx");
    ExpectClose(dgamma, rdg, 1e-3, 1e-4, "dgamma");
    ExpectClose(dbeta, rdb, 1e-3, 1e-4, "dbeta");

    // Null outputs are skipped; the others are unchanged.
    Tensor dx_only;
    BatchNormBackward(dy, x, gamma, saved, &dx_only, nullptr, nullptr);
    ExpectClose(dx_only, ToDouble(dx), 0, 0, "dx only");
  }
}

TEST(BatchNorm, BackwardGradientSumsToZero) {
  // sum(dx) over a channel is 0 and sum(dx * xhat) is 0 (the batch statistics
  // absorb shifts and scalings of x).
  Generator gen(70);
  const Shape shape{16, 4, 3, 3};
  const Tensor x = gen.Normal(shape, 0, 1);
  const Tensor dy = gen.Normal(shape, 0, 1);
  BatchNormSaved saved;
  BatchNormTrainForward(x, Tensor(), Tensor(), Tensor(), Tensor(), 0.1f, 1e-5f,
                        &saved);
  Tensor dx;
  BatchNormBackward(dy, x, Tensor(), saved, &dx, nullptr, nullptr);
  const std::vector<double> dxd = ToDouble(dx);
  const Dims3 d(shape);
  for (int64_t c = 0; c < d.c; ++c) {
    double s = 0.0;
    for (int64_t i = 0; i < d.n; ++i)
      for (int64_t k = 0; k < d.s; ++k) s += dxd[d.At(i, c, k)];
    EXPECT_NEAR(s, 0.0, 1e-4) << "channel " << c;
  }
}

// ---- Errors -----------------------------------------------------------------

// ---- bf16 activations -------------------------------------------------------

// A bf16 x gives what its float32 copy gives, bit for bit (forward, running
// statistics and backward, with and without the fused ReLU), and a bf16 y is
// the float32 y rounded to bf16.
TEST(BatchNorm, Bfloat16InputsAndOutputsMatchTheirFloat32Copies) {
  for (const Shape& shape :
       {Shape{4, 3, 5, 7}, Shape{6, 5}, Shape{40, 48, 3, 3}}) {
    for (const bool relu : {false, true}) {
      SCOPED_TRACE(shape.ToString() + (relu ? " relu" : ""));
      Generator gen(31);
      const int64_t c = shape[1];
      const Tensor x16 = gen.Normal(shape, 1.0f, 2.0f).To(DType::kBfloat16);
      const Tensor x32 = x16.To(DType::kFloat32);
      const Tensor gamma = gen.Normal({c}, 1.0f, 0.5f);
      const Tensor beta = gen.Normal({c}, 0.0f, 0.5f);
      const Tensor dy = gen.Normal(shape, 0.0f, 1.0f);
      Tensor rm32 = Tensor::Zeros({c}), rv32 = Tensor::Ones({c});
      Tensor rm16 = Tensor::Zeros({c}), rv16 = Tensor::Ones({c});
      BatchNormSaved s32, s16;
      const Tensor y32 = BatchNormTrainForward(x32, gamma, beta, rm32, rv32,
                                               0.1f, 1e-5f, &s32, relu);
      const Tensor y16 =
          BatchNormTrainForward(x16, gamma, beta, rm16, rv16, 0.1f, 1e-5f, &s16,
                                relu, DType::kBfloat16);
      ASSERT_EQ(y16.dtype(), DType::kBfloat16);
      EXPECT_EQ(y16.ToVector(), y32.To(DType::kBfloat16).ToVector());
      EXPECT_EQ(BatchNormTrainForward(x16, gamma, beta, Tensor(), Tensor(),
                                      0.1f, 1e-5f, &s16, relu)
                    .ToVector(),
                y32.ToVector());
      EXPECT_EQ(rm16.ToVector(), rm32.ToVector());
      EXPECT_EQ(rv16.ToVector(), rv32.ToVector());
      EXPECT_EQ(s16.mean.ToVector(), s32.mean.ToVector());
      EXPECT_EQ(s16.inv_std.ToVector(), s32.inv_std.ToVector());
      Tensor dx32, dg32, db32, dx16, dg16, db16;
      BatchNormBackward(dy, x32, gamma, s32, &dx32, &dg32, &db32);
      BatchNormBackward(dy, x16, gamma, s16, &dx16, &dg16, &db16);
      EXPECT_EQ(dx16.dtype(), DType::kFloat32);
      EXPECT_EQ(dx16.ToVector(), dx32.ToVector());
      EXPECT_EQ(dg16.ToVector(), dg32.ToVector());
      EXPECT_EQ(db16.ToVector(), db32.ToVector());
      const Tensor e32 =
          BatchNormEvalForward(x32, gamma, beta, rm32, rv32, 1e-5f, relu);
      const Tensor e16 = BatchNormEvalForward(x16, gamma, beta, rm32, rv32,
                                              1e-5f, relu, DType::kBfloat16);
      EXPECT_EQ(e16.ToVector(), e32.To(DType::kBfloat16).ToVector());
    }
  }
}

TEST(BatchNormDeathTest, BadDTypes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  BatchNormSaved saved;
  EXPECT_DEATH(
      BatchNormTrainForward(Tensor::Zeros({2, 3}, DType::kInt64), Tensor(),
                            Tensor(), Tensor(), Tensor(), 0.1f, 1e-5f, &saved),
      "BatchNormTrainForward: x must be float32 or bfloat16, got "
      "int64");
  EXPECT_DEATH(BatchNormEvalForward(Tensor::Zeros({2, 3}), Tensor(), Tensor(),
                                    Tensor::Zeros({3}), Tensor::Ones({3}),
                                    1e-5f, false, DType::kInt32),
               "BatchNormEvalForward: y must be float32 or bfloat16, got "
               "int32");
}

TEST(BatchNormDeathTest, BadShapes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  BatchNormSaved saved;
  EXPECT_DEATH(
      BatchNormTrainForward(Tensor::Zeros({2, 3, 4}), Tensor(), Tensor(),
                            Tensor(), Tensor(), 0.1f, 1e-5f, &saved),
      "BatchNormTrainForward: x must be \\[N, C\\] or \\[N, C, H, "
      "W\\], got shape \\[2, 3, 4\\]");
  EXPECT_DEATH(
      BatchNormTrainForward(Tensor::Zeros({2, 3, 4, 4}), Tensor::Ones({4}),
                            Tensor(), Tensor(), Tensor(), 0.1f, 1e-5f, &saved),
      "BatchNormTrainForward: gamma has shape \\[4\\] but x \\[2, 3, "
      "4, 4\\] has 3 channels");
  EXPECT_DEATH(BatchNormTrainForward(Tensor::Zeros({1, 3}), Tensor(), Tensor(),
                                     Tensor(), Tensor(), 0.1f, 1e-5f, &saved),
               "expected more than 1 value per channel when training");
  EXPECT_DEATH(
      BatchNormEvalForward(Tensor::Zeros({2, 3}), Tensor(), Tensor(),
                           Tensor::Zeros({2}), Tensor::Ones({3}), 1e-5f),
      "BatchNormEvalForward: running_mean has shape \\[2\\] but x "
      "\\[2, 3\\] has 3 channels");
  BatchNormTrainForward(Tensor::Ones({2, 3}), Tensor(), Tensor(), Tensor(),
                        Tensor(), 0.1f, 1e-5f, &saved);
  Tensor dx;
  EXPECT_DEATH(BatchNormBackward(Tensor::Zeros({2, 4}), Tensor::Ones({2, 3}),
                                 Tensor(), saved, &dx, nullptr, nullptr),
               "BatchNormBackward: dy has shape \\[2, 4\\] but x has shape "
               "\\[2, 3\\]");
}

}  // namespace
}  // namespace dive
