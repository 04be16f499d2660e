#include "tensor/linear.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive {
namespace {

// y[i][o] = b[o] + sum_k x[i][k] w[o][k], in double.
std::vector<float> NaiveLinear(const Tensor& x, const Tensor& w,
                               const Tensor& b) {
  const int64_t n = x.dim(0), in = x.dim(1), out = w.dim(0);
  const std::vector<float> xv = x.ToVector(), wv = w.ToVector(),
                           bv = b.ToVector();
  std::vector<float> y(n * out);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < out; ++o) {
      double s = bv[o];
      for (int64_t k = 0; k < in; ++k)
        s += double{xv[i * in + k]} * wv[o * in + k];
      y[i * out + o] = static_cast<float>(s);
    }
  }
  return y;
}

void ExpectNear(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-4f) << "at " << i;
  }
}

TEST(LinearTest, ForwardMatchesTheFormula) {
  ManualSeed(1);
  const Tensor x = Normal({5, 7}, 0, 1), w = Normal({3, 7}, 0, 1),
               b = Normal({3}, 0, 1);
  const Tensor y = LinearForward(x, w, b);
  EXPECT_EQ(y.shape(), Shape({5, 3}));
  ExpectNear(y.ToVector(), NaiveLinear(x, w, b));
  // Without a bias, and on a transposed (non-contiguous) weight view.
  const Tensor wt = Normal({7, 3}, 0, 1).Transpose(0, 1);
  ExpectNear(LinearForward(x, wt, Tensor()).ToVector(),
             NaiveLinear(x, wt, Tensor::Zeros({3})));
}

// Frozen weights (Tensor::Frozen) take the GEMM the other way round, y^T =
// w x^T with w packed once and kept: the same values, bit for bit (within
// rounding on the generic path), at the first call and the later ones, in
// float32 and bf16, with and without a bias, at shapes with edges in every
// dimension; one pack per precision.
TEST(LinearTest, FrozenWeightsGiveTheSameValues) {
  ManualSeed(3);
  struct Case {
    int64_t n, in, out;
  };
  for (const Case c : {Case{1, 9, 5}, Case{37, 300, 70}, Case{130, 70, 513}}) {
    SCOPED_TRACE(::testing::Message()
                 << c.n << " x " << c.in << " -> " << c.out);
    const Tensor x = Normal({c.n, c.in}, 0, 1);
    const Tensor w = Normal({c.out, c.in}, 0, 0.1f), b = Normal({c.out}, 0, 1);
    const Tensor frozen = w.Frozen();
    for (MatmulPrecision precision :
         {MatmulPrecision::kFloat32, MatmulPrecision::kBfloat16}) {
      const ScopedMatmulPrecision scope(precision);
      for (const Tensor& bias : {b, Tensor()}) {
        const std::vector<float> want = LinearForward(x, w, bias).ToVector();
        for (int call = 0; call < 2; ++call) {
          const std::vector<float> got =
              LinearForward(x, frozen, bias).ToVector();
          if (ActiveIsa() != Isa::kGeneric) {
            EXPECT_EQ(got, want);
            continue;
          }
          // Eigen's GEMM blocks the sums its own way for each operand order.
          ASSERT_EQ(got.size(), want.size());
          for (size_t i = 0; i < got.size(); ++i) {
            EXPECT_NEAR(got[i], want[i], 1e-5f * (1 + std::fabs(want[i])));
          }
        }
      }
    }
    EXPECT_EQ(frozen.frozen_forms()->size(), 2u);
  }
}

// The backward kernels against the forward one: with dy = e_(i,o), dx is row
// o of w at row i, dw is x's row i at row o, db is e_o.
TEST(LinearTest, BackwardKernelsAreTheForwardsTransposes) {
  ManualSeed(2);
  const Tensor x = Normal({4, 6}, 0, 1), w = Normal({3, 6}, 0, 1);
  std::vector<float> e(4 * 3, 0.0f);
  e[2 * 3 + 1] = 1.0f;
  const Tensor dy = Tensor::FromVector(e, {4, 3});
  const Tensor dx = LinearBackwardInput(dy, w);
  const Tensor dw = LinearBackwardWeight(dy, x);
  const Tensor db = LinearBackwardBias(dy);
  EXPECT_EQ(dx.shape(), Shape({4, 6}));
  EXPECT_EQ(dw.shape(), Shape({3, 6}));
  EXPECT_EQ(db.ToVector(), (std::vector<float>{0, 1, 0}));
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t k = 0; k < 6; ++k) {
      EXPECT_FLOAT_EQ(dx.at<float>({i, k}), i == 2 ? w.at<float>({1, k}) : 0);
    }
  }
  for (int64_t o = 0; o < 3; ++o) {
    for (int64_t k = 0; k < 6; ++k) {
      EXPECT_FLOAT_EQ(dw.at<float>({o, k}), o == 1 ? x.at<float>({2, k}) : 0);
    }
  }
}

TEST(LinearDeathTest, NamesTheShapes) {
  EXPECT_DEATH(
      LinearForward(Tensor::Zeros({2, 3}), Tensor::Zeros({4, 5}), Tensor()),
      "input has 3 features but weight \\[4, 5\\] expects 5");
  EXPECT_DEATH(LinearForward(Tensor::Zeros({2, 5}), Tensor::Zeros({4, 5}),
                             Tensor::Zeros({3})),
               "bias of shape \\[3\\] for 4 outputs");
  EXPECT_DEATH(
      LinearBackwardInput(Tensor::Zeros({2, 3}), Tensor::Zeros({4, 5})),
      "dy \\[2, 3\\] for weight \\[4, 5\\]");
}

}  // namespace
}  // namespace dive
