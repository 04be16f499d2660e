#include "tensor/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tensor/gemm.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive {
namespace {

using ::testing::ElementsAre;

// ---- Reference helpers (independent of the kernels under test) --------------

Tensor Rand(const Shape& shape, uint64_t seed, float lo = -2.0f,
            float hi = 2.0f) {
  Generator gen(seed);
  return gen.Uniform(shape, lo, hi);
}

Tensor Iota(const Shape& shape) {
  return Tensor::Arange(shape.numel()).View(shape);
}

std::vector<int64_t> Unravel(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.rank());
  for (int d = shape.rank() - 1; d >= 0; --d) {
    idx[d] = flat % shape.dims()[d];
    flat /= shape.dims()[d];
  }
  return idx;
}

int64_t Ravel(const std::vector<int64_t>& idx, const Shape& shape) {
  int64_t flat = 0;
  for (int d = 0; d < shape.rank(); ++d) flat = flat * shape.dims()[d] + idx[d];
  return flat;
}

// Element of `t` at `idx`, read through the strides.
float Get(const Tensor& t, const std::vector<int64_t>& idx) {
  int64_t off = 0;
  for (int d = 0; d < t.rank(); ++d) off += idx[d] * t.strides()[d];
  return t.data()[off];
}

// Element of `t` for index `out_idx` of a shape `t` broadcasts to (NumPy:
// leading dimensions dropped, size-1 dimensions pinned to 0).
float GetBroadcast(const Tensor& t, const std::vector<int64_t>& out_idx) {
  const int lead = static_cast<int>(out_idx.size()) - t.rank();
  std::vector<int64_t> idx(t.rank());
  for (int d = 0; d < t.rank(); ++d) {
    idx[d] = t.dim(d) == 1 ? 0 : out_idx[lead + d];
  }
  return Get(t, idx);
}

// Expects `t` to have `shape` and every element to equal `expected` (row-major)
// within `tol` (0: exactly).
void ExpectValues(const Tensor& t, const Shape& shape,
                  const std::vector<double>& expected, double tol = 0.0) {
  ASSERT_EQ(t.shape(), shape);
  ASSERT_EQ(t.numel(), static_cast<int64_t>(expected.size()));
  const std::vector<float> v = t.ToVector();
  for (size_t i = 0; i < v.size(); ++i) {
    if (tol == 0.0) {
      ASSERT_EQ(v[i], static_cast<float>(expected[i])) << "at flat index " << i;
    } else {
      ASSERT_NEAR(v[i], expected[i], tol) << "at flat index " << i;
    }
  }
}

// Expects two tensors to be equal in shape and (exactly) in value.
void ExpectSame(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  const std::vector<float> va = a.ToVector(), vb = b.ToVector();
  for (size_t i = 0; i < va.size(); ++i) {
    ASSERT_EQ(va[i], vb[i]) << "at flat index " << i;
  }
}

// NumPy-style broadcast binary op computed one element at a time.
std::vector<double> NaiveBinary(const Tensor& a, const Tensor& b,
                                const Shape& out,
                                const std::function<float(float, float)>& f) {
  std::vector<double> r(out.numel());
  for (int64_t i = 0; i < out.numel(); ++i) {
    const std::vector<int64_t> idx = Unravel(i, out);
    r[i] = f(GetBroadcast(a, idx), GetBroadcast(b, idx));
  }
  return r;
}

std::vector<double> NaiveUnary(const Tensor& a,
                               const std::function<float(float)>& f) {
  std::vector<double> r(a.numel());
  for (int64_t i = 0; i < a.numel(); ++i)
    r[i] = f(Get(a, Unravel(i, a.shape())));
  return r;
}

struct BinaryCase {
  const char* name;
  Tensor (*op)(const Tensor&, const Tensor&);
  float (*ref)(float, float);
};

const BinaryCase kBinaryCases[] = {
    {"Add", ops::Add, [](float x, float y) { return x + y; }},
    {"Sub", ops::Sub, [](float x, float y) { return x - y; }},
    {"Mul", ops::Mul, [](float x, float y) { return x * y; }},
    {"Div", ops::Div, [](float x, float y) { return x / y; }},
    {"Maximum", ops::Maximum, [](float x, float y) { return std::max(x, y); }},
    {"Minimum", ops::Minimum, [](float x, float y) { return std::min(x, y); }},
    {"Greater", ops::Greater,
     [](float x, float y) { return x > y ? 1.0f : 0.0f; }},
    {"Less", ops::Less, [](float x, float y) { return x < y ? 1.0f : 0.0f; }},
    {"Equal", ops::Equal,
     [](float x, float y) { return x == y ? 1.0f : 0.0f; }},
};

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  float (*ref)(float);
};

std::vector<UnaryCase> UnaryCases() {
  return {
      {"Neg", ops::Neg, [](float x) { return -x; }},
      {"Exp", ops::Exp, [](float x) { return std::exp(x); }},
      // Log and Sqrt on |x| + 0.5, which is positive.
      {"Log",
       [](const Tensor& t) {
         return ops::Log(ops::AddScalar(ops::Abs(t), 0.5f));
       },
       [](float x) { return std::log(std::fabs(x) + 0.5f); }},
      {"Sqrt",
       [](const Tensor& t) {
         return ops::Sqrt(ops::AddScalar(ops::Abs(t), 0.5f));
       },
       [](float x) { return std::sqrt(std::fabs(x) + 0.5f); }},
      {"Abs", ops::Abs, [](float x) { return std::fabs(x); }},
      {"Square", ops::Square, [](float x) { return x * x; }},
      {"Relu", ops::Relu, [](float x) { return x > 0 ? x : 0.0f; }},
      {"Sigmoid", ops::Sigmoid,
       [](float x) { return 1.0f / (1.0f + std::exp(-x)); }},
      {"Tanh", ops::Tanh, [](float x) { return std::tanh(x); }},
      {"AddScalar", [](const Tensor& t) { return ops::AddScalar(t, 1.5f); },
       [](float x) { return x + 1.5f; }},
      {"MulScalar", [](const Tensor& t) { return ops::MulScalar(t, -3.0f); },
       [](float x) { return x * -3.0f; }},
      {"PowScalar3", [](const Tensor& t) { return ops::PowScalar(t, 3.0f); },
       [](float x) { return std::pow(x, 3.0f); }},
      {"GreaterScalar",
       [](const Tensor& t) { return ops::GreaterScalar(t, 0.25f); },
       [](float x) { return x > 0.25f ? 1.0f : 0.0f; }},
      {"Clamp", [](const Tensor& t) { return ops::Clamp(t, -0.5f, 1.0f); },
       [](float x) { return std::min(std::max(x, -0.5f), 1.0f); }},
  };
}

// Relative tolerance for transcendental functions (libm may differ by an ulp
// between call sites).
void ExpectUnaryMatches(const UnaryCase& c, const Tensor& x) {
  SCOPED_TRACE(c.name);
  const Tensor y = c.op(x);
  EXPECT_TRUE(y.is_contiguous());
  const std::vector<double> ref = NaiveUnary(x, c.ref);
  ASSERT_EQ(y.shape(), x.shape());
  const std::vector<float> v = y.ToVector();
  for (size_t i = 0; i < v.size(); ++i) {
    ASSERT_NEAR(v[i], ref[i], 1e-6 * std::max(1.0, std::fabs(ref[i])))
        << "at flat index " << i;
  }
}

// ---- Elementwise: small hand-computed cases ---------------------------------

TEST(ElementwiseTest, BinaryValues) {
  const Tensor a = Tensor::FromVector({1, -2, 3, 0.5f}, {4});
  const Tensor b = Tensor::FromVector({4, 5, -6, 0.5f}, {4});
  ExpectValues(ops::Add(a, b), {4}, {5, 3, -3, 1});
  ExpectValues(ops::Sub(a, b), {4}, {-3, -7, 9, 0});
  ExpectValues(ops::Mul(a, b), {4}, {4, -10, -18, 0.25});
  ExpectValues(ops::Div(a, b), {4}, {0.25, -0.4f, -0.5, 1});
  ExpectValues(ops::Maximum(a, b), {4}, {4, 5, 3, 0.5});
  ExpectValues(ops::Minimum(a, b), {4}, {1, -2, -6, 0.5});
  ExpectValues(ops::Greater(a, b), {4}, {0, 0, 1, 0});
  ExpectValues(ops::Less(a, b), {4}, {1, 1, 0, 0});
  ExpectValues(ops::Equal(a, b), {4}, {0, 0, 0, 1});
}

TEST(ElementwiseTest, ScalarOpValues) {
  const Tensor a = Tensor::FromVector({-2, -0.5f, 0, 0.5f, 2}, {5});
  ExpectValues(ops::AddScalar(a, 1), {5}, {-1, 0.5, 1, 1.5, 3});
  ExpectValues(ops::MulScalar(a, -2), {5}, {4, 1, 0, -1, -4});
  ExpectValues(ops::PowScalar(a, 2), {5}, {4, 0.25, 0, 0.25, 4});
  ExpectValues(ops::PowScalar(a, 3), {5}, {-8, -0.125, 0, 0.125, 8});
  ExpectValues(ops::PowScalar(Tensor::FromVector({4, 9, 2}, {3}), 0.5f), {3},
               {2, 3, std::sqrt(2.0)}, 1e-6);
  ExpectValues(ops::GreaterScalar(a, 0), {5}, {0, 0, 0, 1, 1});
  ExpectValues(ops::Clamp(a, -1, 1), {5}, {-1, -0.5, 0, 0.5, 1});
}

TEST(ElementwiseTest, UnaryValues) {
  ExpectValues(ops::Neg(Tensor::FromVector({1, -2, 0}, {3})), {3}, {-1, 2, 0});
  ExpectValues(ops::Exp(Tensor::FromVector({0, 1, -1}, {3})), {3},
               {1, std::exp(1.0), std::exp(-1.0)}, 1e-6);
  ExpectValues(ops::Log(Tensor::FromVector({1, std::exp(1.0f), 0.5f}, {3})),
               {3}, {0, 1, std::log(0.5)}, 1e-6);
  ExpectValues(ops::Sqrt(Tensor::FromVector({0, 4, 2}, {3})), {3},
               {0, 2, std::sqrt(2.0)}, 1e-6);
  ExpectValues(ops::Abs(Tensor::FromVector({-3, 0, 2.5f}, {3})), {3},
               {3, 0, 2.5});
  ExpectValues(ops::Square(Tensor::FromVector({-3, 0.5f}, {2})), {2},
               {9, 0.25});
  ExpectValues(ops::Relu(Tensor::FromVector({-1, 0, 2}, {3})), {3}, {0, 0, 2});
  ExpectValues(ops::Sigmoid(Tensor::FromVector({0, 2, -2, 100, -100}, {5})),
               {5}, {0.5, 0.88079707797788, 0.11920292202212, 1, 0}, 1e-6);
  ExpectValues(ops::Tanh(Tensor::FromVector({0, 1, -20}, {3})), {3},
               {0, 0.76159415595576, -1}, 1e-6);
}

TEST(ElementwiseTest, OpsOnScalars) {
  const Tensor s = ops::Mul(Tensor::Scalar(3), Tensor::Scalar(-2));
  EXPECT_EQ(s.rank(), 0);
  EXPECT_EQ(s.item(), -6);
  EXPECT_EQ(ops::Exp(Tensor::Scalar(0)).item(), 1);
}

TEST(ElementwiseTest, ActivationBackward) {
  const Tensor g = Tensor::FromVector({1, 2, 3, 4}, {4});
  ExpectValues(ops::ReluBackward(g, Tensor::FromVector({-1, 0, 0.5f, 2}, {4})),
               {4}, {0, 0, 3, 4});
  // y stored in bf16 (a convolution's output): the same mask, -0, +inf, NaN
  // and a value below bf16's smallest subnormal (rounds to 0) included.
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor y = Tensor::FromVector(
      {-1, 0, 0.5f, 2, -0.0f, inf, std::nanf(""), 1e-45f}, {2, 4});
  const Tensor g8 = Tensor::FromVector({1, 2, 3, 4, 5, 6, 7, 8}, {2, 4});
  ExpectValues(ops::ReluBackward(g8, y.To(DType::kBfloat16)), {2, 4},
               {0, 0, 3, 4, 0, 6, 0, 0});
  // Broadcast over a strided view of the gradient.
  ExpectValues(ops::ReluBackward(g8.Transpose(0, 1).Contiguous().Transpose(0, 1),
                                 y.To(DType::kBfloat16)),
               {2, 4}, {0, 0, 3, 4, 0, 6, 0, 0});
  ExpectValues(
      ops::SigmoidBackward(g, Tensor::FromVector({0.25f, 0.5f, 0, 1}, {4})),
      {4}, {1 * 0.25 * 0.75, 2 * 0.5 * 0.5, 0, 0});
  ExpectValues(
      ops::TanhBackward(g, Tensor::FromVector({0.5f, 0, -1, -0.5f}, {4})), {4},
      {0.75, 2, 0, 3});
}

// ---- Elementwise: broadcasting ----------------------------------------------

TEST(BroadcastTest, AllBinaryOpsMatchNaiveLoop) {
  struct ShapePair {
    Shape a, b, out;
  };
  const std::vector<ShapePair> shapes = {
      {{2, 1, 3}, {4, 1}, {2, 4, 3}},
      {{3}, {2, 3}, {2, 3}},
      {{2, 3}, {2, 1}, {2, 3}},
      {{1, 3}, {2, 1}, {2, 3}},
      {{}, {2, 3}, {2, 3}},
      {{5, 1, 4, 1}, {3, 1, 2}, {5, 3, 4, 2}},
      {{1}, {5}, {5}},
  };
  uint64_t seed = 1;
  for (const ShapePair& s : shapes) {
    // Small integers make Equal/Greater/Less hit both outcomes.
    const Tensor a = ops::AddScalar(
        Tensor::FromVector(
            [&] {
              std::vector<float> v = Rand(s.a, seed++, 0, 4).ToVector();
              for (float& x : v) x = std::floor(x);
              return v;
            }(),
            s.a),
        0.5f);
    const Tensor b = ops::AddScalar(
        Tensor::FromVector(
            [&] {
              std::vector<float> v = Rand(s.b, seed++, 0, 4).ToVector();
              for (float& x : v) x = std::floor(x);
              return v;
            }(),
            s.b),
        0.5f);
    for (const BinaryCase& c : kBinaryCases) {
      SCOPED_TRACE(std::string(c.name) + " " + s.a.ToString() + " " +
                   s.b.ToString());
      ExpectValues(c.op(a, b), s.out, NaiveBinary(a, b, s.out, c.ref));
      ExpectValues(c.op(b, a), s.out, NaiveBinary(b, a, s.out, c.ref));
    }
  }
}

TEST(BroadcastTest, AddRowVectorExample) {
  const Tensor x = Tensor::FromVector({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor b = Tensor::FromVector({10, 20, 30}, {3});
  ExpectValues(ops::Add(x, b), {2, 3}, {11, 22, 33, 14, 25, 36});
}

TEST(BroadcastTest, ComparisonsBroadcast) {
  const Tensor a = Tensor::FromVector({1, 2, 3}, {3});
  const Tensor b = Tensor::FromVector({2, 3}, {2, 1});
  ExpectValues(ops::Greater(a, b), {2, 3}, {0, 0, 1, 0, 0, 0});
  ExpectValues(ops::Less(a, b), {2, 3}, {1, 0, 0, 1, 1, 0});
  ExpectValues(ops::Equal(a, b), {2, 3}, {0, 1, 0, 0, 0, 1});
}

// ---- Elementwise: strided inputs --------------------------------------------

std::vector<std::pair<std::string, Tensor>> StridedViews(const Shape& shape,
                                                         uint64_t seed) {
  // `shape` is 2-D; each entry is a non-contiguous view of that shape.
  const int64_t r = shape.dims()[0], c = shape.dims()[1];
  return {
      {"transposed", Rand({c, r}, seed).Transpose(0, 1)},
      {"sliced", Rand({r + 2, 2 * c + 1}, seed + 1)
                     .Slice(0, 1, r + 1)
                     .Slice(1, 1, 2 * c + 1, 2)},
      {"expanded", Rand({r, 1}, seed + 2).Expand(shape)},
      {"selected", Rand({r, 3, c}, seed + 3).Select(1, 2)},
      {"permuted3d", Rand({c, 1, r}, seed + 4).Permute({2, 1, 0}).Squeeze(1)},
  };
}

TEST(StridedInputTest, BinaryOpsMatchContiguousCopies) {
  const Shape shape{5, 7};
  for (const auto& [na, a] : StridedViews(shape, 10)) {
    ASSERT_EQ(a.shape(), shape) << na;
    ASSERT_FALSE(a.is_contiguous()) << na;
    for (const auto& [nb, b] : StridedViews(shape, 20)) {
      for (const BinaryCase& c : kBinaryCases) {
        SCOPED_TRACE(std::string(c.name) + " " + na + " " + nb);
        const Tensor y = c.op(a, b);
        EXPECT_TRUE(y.is_contiguous());
        ExpectSame(y, c.op(a.Contiguous(), b.Contiguous()));
      }
    }
  }
}

TEST(StridedInputTest, UnaryOpsMatchContiguousCopies) {
  for (const auto& [name, a] : StridedViews({6, 5}, 30)) {
    for (const UnaryCase& c : UnaryCases()) {
      SCOPED_TRACE(std::string(c.name) + " " + name);
      ExpectSame(c.op(a), c.op(a.Contiguous()));
      ExpectUnaryMatches(c, a);
    }
  }
}

// ---- Large tensors (OpenMP path) --------------------------------------------

constexpr int64_t kRows = 300, kCols = 257;  // 77100 > 2^15 elements

TEST(LargeTensorTest, BinaryMatchesNaiveLoop) {
  const Tensor a = Rand({kRows, kCols}, 40);
  const Tensor row = Rand({kCols}, 41);
  const Tensor at = Rand({kCols, kRows}, 42).Transpose(0, 1);
  const Tensor col = Rand({kRows, 1}, 43);
  for (const BinaryCase& c : kBinaryCases) {
    SCOPED_TRACE(c.name);
    ExpectValues(c.op(a, row), {kRows, kCols},
                 NaiveBinary(a, row, {kRows, kCols}, c.ref));
    ExpectValues(c.op(at, a), {kRows, kCols},
                 NaiveBinary(at, a, {kRows, kCols}, c.ref));
    ExpectValues(c.op(col, at), {kRows, kCols},
                 NaiveBinary(col, at, {kRows, kCols}, c.ref));
  }
}

TEST(LargeTensorTest, UnaryMatchesNaiveLoop) {
  const Tensor a = Rand({kCols, kRows}, 44).Transpose(0, 1);
  const Tensor b = Rand({kRows, kCols}, 45);
  for (const UnaryCase& c : UnaryCases()) {
    ExpectUnaryMatches(c, a);
    ExpectUnaryMatches(c, b);
  }
}

TEST(LargeTensorTest, CopyWhereAndInPlaceMatchNaiveLoop) {
  const Tensor at = Rand({kCols, kRows}, 46).Transpose(0, 1);
  ExpectValues(at.Contiguous(), {kRows, kCols},
               NaiveUnary(at, [](float x) { return x; }));

  const Tensor cond = ops::GreaterScalar(Rand({kRows, 1}, 47), 0);
  const Tensor b = Rand({kRows, kCols}, 48);
  std::vector<double> ref(kRows * kCols);
  for (int64_t i = 0; i < kRows; ++i) {
    for (int64_t j = 0; j < kCols; ++j) {
      ref[i * kCols + j] =
          Get(cond, {i, 0}) != 0 ? Get(at, {i, j}) : Get(b, {i, j});
    }
  }
  ExpectValues(ops::Where(cond, at, b), {kRows, kCols}, ref);

  Tensor dst = b.Clone();
  const Tensor row = Rand({kCols}, 49);
  ops::AddInPlace(dst, row, 0.5f);
  std::vector<double> ref2(kRows * kCols);
  for (int64_t i = 0; i < kRows; ++i) {
    for (int64_t j = 0; j < kCols; ++j) {
      ref2[i * kCols + j] = Get(b, {i, j}) + 0.5f * Get(row, {j});
    }
  }
  ExpectValues(dst, {kRows, kCols}, ref2, 1e-6);

  Tensor base = b.Clone();
  Tensor view = base.Transpose(0, 1);
  ops::MulScalarInPlace(view, 2.0f);
  ExpectValues(base, {kRows, kCols},
               NaiveUnary(b, [](float x) { return 2 * x; }));
}

TEST(LargeTensorTest, SumMatchesNaiveLoop) {
  const Tensor a = Rand({kRows, kCols}, 50);
  std::vector<double> rows(kRows, 0.0), cols(kCols, 0.0);
  double total = 0;
  for (int64_t i = 0; i < kRows; ++i) {
    for (int64_t j = 0; j < kCols; ++j) {
      const double v = Get(a, {i, j});
      rows[i] += v;
      cols[j] += v;
      total += v;
    }
  }
  ExpectValues(ops::Sum(a, {1}), {kRows}, rows, 1e-4);
  ExpectValues(ops::Sum(a, {0}), {kCols}, cols, 1e-4);
  ExpectValues(ops::Sum(a.Transpose(0, 1), {0}), {kRows}, rows, 1e-4);
  ExpectValues(ops::Sum(a), {}, {total}, 1e-2);
}

// ---- Where, Clamp -----------------------------------------------------------

TEST(WhereTest, SelectsWithBroadcasting) {
  const Tensor cond = Tensor::FromVector({1, 0}, {2, 1});
  const Tensor a = Tensor::FromVector({1, 2, 3}, {3});
  const Tensor b = Tensor::Scalar(-1);
  ExpectValues(ops::Where(cond, a, b), {2, 3}, {1, 2, 3, -1, -1, -1});
  // Any nonzero (including negative) condition selects `a`.
  ExpectValues(ops::Where(Tensor::FromVector({-2, 0, 0.5f}, {3}), a,
                          Tensor::FromVector({7, 8, 9}, {3})),
               {3}, {1, 8, 3});
}

TEST(WhereTest, UnselectedNaNDoesNotPropagate) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor cond = Tensor::FromVector({0, 1}, {2});
  const Tensor a = Tensor::FromVector({nan, 1}, {2});
  const Tensor b = Tensor::FromVector({5, nan}, {2});
  ExpectValues(ops::Where(cond, a, b), {2}, {5, 1});
}

TEST(WhereTest, StridedOperands) {
  const Tensor cond = ops::GreaterScalar(Rand({4, 6}, 60), 0).Transpose(0, 1);
  const Tensor a = Rand({6, 4}, 61);
  const Tensor b = Rand({4}, 62).Expand({6, 4});
  ExpectSame(ops::Where(cond, a, b),
             ops::Where(cond.Contiguous(), a, b.Contiguous()));
}

// ---- In place ---------------------------------------------------------------

TEST(InPlaceTest, AddInPlaceBroadcasts) {
  Tensor dst = Iota({2, 3});
  ops::AddInPlace(dst, Tensor::FromVector({1, 2, 3}, {3}), 2.0f);
  ExpectValues(dst, {2, 3}, {2, 5, 8, 5, 8, 11});
  ops::AddInPlace(dst, Tensor::Scalar(1));
  ExpectValues(dst, {2, 3}, {3, 6, 9, 6, 9, 12});
  ops::AddInPlace(dst, Tensor::FromVector({10, 20}, {2, 1}), -1.0f);
  ExpectValues(dst, {2, 3}, {-7, -4, -1, -14, -11, -8});
}

TEST(InPlaceTest, AddInPlaceIntoStridedViewWritesThrough) {
  Tensor base = Iota({2, 3});
  Tensor view = base.Transpose(0, 1);  // [3, 2]
  ops::AddInPlace(view, Tensor::FromVector({100, 200}, {2}));
  ExpectValues(base, {2, 3}, {100, 101, 102, 203, 204, 205});

  Tensor base2 = Iota({3, 4});
  Tensor cols = base2.Slice(1, 1, 4, 2);
  ops::AddInPlace(cols, Iota({3, 2}));
  ExpectValues(base2, {3, 4}, {0, 1, 2, 4, 4, 7, 6, 10, 8, 13, 10, 16});
}

TEST(InPlaceTest, MulScalarInPlaceOnlyTouchesTheView) {
  Tensor base = Iota({3, 4});
  Tensor col = base.Select(1, 2);
  ops::MulScalarInPlace(col, -1.0f);
  ExpectValues(base, {3, 4}, {0, 1, -2, 3, 4, 5, -6, 7, 8, 9, -10, 11});
}

// ---- Reductions -------------------------------------------------------------

// Sum over the dimensions with reduce[d] set, in double, keepdim layout.
std::vector<double> NaiveSum(const Tensor& a, const std::vector<bool>& reduce) {
  Shape kept;
  for (int d = 0; d < a.rank(); ++d) kept.push_back(reduce[d] ? 1 : a.dim(d));
  std::vector<double> r(kept.numel(), 0.0);
  for (int64_t i = 0; i < a.numel(); ++i) {
    std::vector<int64_t> idx = Unravel(i, a.shape());
    const float v = Get(a, idx);
    for (int d = 0; d < a.rank(); ++d) {
      if (reduce[d]) idx[d] = 0;
    }
    r[Ravel(idx, kept)] += v;
  }
  return r;
}

TEST(ReduceTest, SumHandComputed) {
  const Tensor x = Iota({2, 3});
  ExpectValues(ops::Sum(x, {0}), {3}, {3, 5, 7});
  ExpectValues(ops::Sum(x, {1}), {2}, {3, 12});
  ExpectValues(ops::Sum(x, {-1}, true), {2, 1}, {3, 12});
  ExpectValues(ops::Sum(x), {}, {15});
  ExpectValues(ops::Sum(x, {}, true), {1, 1}, {15});
  ExpectValues(ops::Sum(x, {0, 1}), {}, {15});
  ExpectValues(ops::Mean(x, {1}), {2}, {1, 4});
  ExpectValues(ops::Mean(x, {0}, true), {1, 3}, {1.5, 2.5, 3.5});
  ExpectValues(ops::Mean(x), {}, {2.5});
  ExpectValues(ops::Sum(Tensor::Scalar(4)), {}, {4});
}

TEST(ReduceTest, SumAndMeanOverEveryAxisCombination) {
  const Tensor a = Rand({2, 3, 4}, 70);
  const Tensor strided = Rand({4, 2, 3}, 71).Permute({1, 2, 0});
  const std::vector<std::vector<int>> axes_list = {
      {0}, {1}, {2}, {-1}, {-3}, {0, 2}, {1, 2}, {0, 1}, {2, 0}, {0, 1, 2}, {}};
  for (const Tensor& x : {a, strided}) {
    for (const std::vector<int>& axes : axes_list) {
      std::vector<bool> reduce(3, axes.empty());
      for (int ax : axes) reduce[ax < 0 ? ax + 3 : ax] = true;
      const std::vector<double> ref = NaiveSum(x, reduce);
      int64_t count = 1;
      Shape kept, dropped;
      for (int d = 0; d < 3; ++d) {
        kept.push_back(reduce[d] ? 1 : x.dim(d));
        if (!reduce[d]) dropped.push_back(x.dim(d));
        if (reduce[d]) count *= x.dim(d);
      }
      std::vector<double> mean = ref;
      for (double& m : mean) m /= count;
      SCOPED_TRACE(::testing::PrintToString(axes));
      ExpectValues(ops::Sum(x, axes, /*keepdim=*/true), kept, ref, 1e-5);
      ExpectValues(ops::Sum(x, axes, /*keepdim=*/false), dropped, ref, 1e-5);
      ExpectValues(ops::Mean(x, axes, /*keepdim=*/true), kept, mean, 1e-6);
      ExpectValues(ops::Mean(x, axes, /*keepdim=*/false), dropped, mean, 1e-6);
    }
  }
}

TEST(ReduceTest, SumToInvertsBroadcast) {
  const Tensor b = Rand({3, 1}, 72);
  const Tensor e = ops::Add(b, Tensor::Zeros({2, 3, 4}));  // broadcast
  const Tensor s = ops::SumTo(e, {3, 1});
  ASSERT_EQ(s.shape(), Shape({3, 1}));
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(s.at<float>({i, 0}), 8 * b.at<float>({i, 0}), 1e-5);
  }
  // Expanded (stride-0) input, too.
  ExpectValues(ops::SumTo(b.Expand({2, 3, 4}), {3, 1}), {3, 1},
               NaiveSum(ops::MulScalar(b, 8), {false, false}), 1e-5);
}

TEST(ReduceTest, SumToMatchesNaiveSum) {
  const Tensor a = Rand({2, 3, 4}, 73);
  ExpectValues(ops::SumTo(a, {3, 1}), {3, 1}, NaiveSum(a, {true, false, true}),
               1e-5);
  ExpectValues(ops::SumTo(a, {1, 4}), {1, 4}, NaiveSum(a, {true, true, false}),
               1e-5);
  ExpectValues(ops::SumTo(a, {4}), {4}, NaiveSum(a, {true, true, false}), 1e-5);
  ExpectValues(ops::SumTo(a, {2, 1, 1}), {2, 1, 1},
               NaiveSum(a, {false, true, true}), 1e-5);
  ExpectValues(ops::SumTo(a, {}), {}, NaiveSum(a, {true, true, true}), 1e-5);
  ExpectSame(ops::SumTo(a, {2, 3, 4}), a);
  // Size-1 dimensions that stay size 1 are not reduced away.
  const Tensor c = Rand({2, 1, 3}, 74);
  ExpectValues(ops::SumTo(c, {1, 1, 3}), {1, 1, 3},
               NaiveSum(c, {true, false, false}), 1e-6);
}

// Max and first-argmax along `axis` of a 3-D tensor, keepdim layout.
void NaiveMaxArgmax(const Tensor& a, int axis, std::vector<double>* max,
                    std::vector<double>* arg) {
  Shape kept = a.shape();
  kept[axis] = 1;
  max->assign(kept.numel(), -std::numeric_limits<double>::infinity());
  arg->assign(kept.numel(), -1);
  for (int64_t i = 0; i < a.numel(); ++i) {
    std::vector<int64_t> idx = Unravel(i, a.shape());
    const float v = Get(a, idx);
    const int64_t pos = idx[axis];
    idx[axis] = 0;
    const int64_t o = Ravel(idx, kept);
    if (v > (*max)[o]) {  // strict: the first maximum wins
      (*max)[o] = v;
      (*arg)[o] = pos;
    }
  }
}

TEST(ReduceTest, MaxAndArgmaxAlongEachAxis) {
  // Small integers: plenty of ties.
  std::vector<float> v = Rand({3, 4, 5}, 75, 0, 3).ToVector();
  for (float& x : v) x = std::floor(x);
  const Tensor a = Tensor::FromVector(v, {3, 4, 5});
  const Tensor strided = a.Permute({2, 0, 1}).Contiguous().Permute({1, 2, 0});
  ASSERT_FALSE(strided.is_contiguous());
  for (const Tensor& x : {a, strided}) {
    for (int axis = 0; axis < 3; ++axis) {
      SCOPED_TRACE(axis);
      std::vector<double> max, arg;
      NaiveMaxArgmax(x, axis, &max, &arg);
      Shape kept = x.shape(), dropped;
      kept[axis] = 1;
      for (int d = 0; d < 3; ++d) {
        if (d != axis) dropped.push_back(x.dim(d));
      }
      ExpectValues(ops::Max(x, axis, /*keepdim=*/true), kept, max);
      ExpectValues(ops::Max(x, axis), dropped, max);
      ExpectValues(ops::Max(x, axis - 3), dropped, max);
      const Tensor am = ops::Argmax(x, axis, /*keepdim=*/true);
      EXPECT_EQ(am.dtype(), DType::kInt64);
      ExpectValues(am, kept, arg);
      ExpectValues(ops::Argmax(x, axis), dropped, arg);
    }
  }
}

TEST(ReduceTest, ArgmaxTiesPickTheFirst) {
  const Tensor a = Tensor::FromVector({1, 3, 3, 2, 2, 1}, {2, 3});
  EXPECT_THAT(ops::Argmax(a, 1).ToInt64Vector(), ElementsAre(1, 0));
  EXPECT_THAT(ops::Argmax(a, 0).ToInt64Vector(), ElementsAre(1, 0, 0));
  const Tensor b = Tensor::FromVector({5, 1, 5, 2}, {2, 2});
  EXPECT_THAT(ops::Argmax(b, 0).ToInt64Vector(), ElementsAre(0, 1));
  EXPECT_THAT(ops::Max(b, 0).ToVector(), ElementsAre(5, 2));
  EXPECT_THAT(ops::Max(Tensor::FromVector({-3, -1, -2}, {3}), 0).ToVector(),
              ElementsAre(-1));
}

// ---- MatMul -----------------------------------------------------------------

// op(a)[m, k] x op(b)[k, n] in double.
std::vector<double> NaiveMatMul(const Tensor& a, const Tensor& b) {
  const int64_t m = a.dim(0), k = a.dim(1), n = b.dim(1);
  std::vector<double> r(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) {
        acc += static_cast<double>(Get(a, {i, p})) * Get(b, {p, j});
      }
      r[i * n + j] = acc;
    }
  }
  return r;
}

std::vector<double> NaiveBatchedMatMul(const Tensor& a, const Tensor& b) {
  const int64_t batch = a.rank() == 3 ? a.dim(0) : b.dim(0);
  std::vector<double> r;
  for (int64_t i = 0; i < batch; ++i) {
    const std::vector<double> ri = NaiveMatMul(
        a.rank() == 3 ? a.Select(0, i) : a, b.rank() == 3 ? b.Select(0, i) : b);
    r.insert(r.end(), ri.begin(), ri.end());
  }
  return r;
}

TEST(MatMulTest, HandComputed) {
  const Tensor a = Tensor::FromVector({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor b = Tensor::FromVector({7, 8, 9, 10, 11, 12}, {3, 2});
  ExpectValues(ops::MatMul(a, b), {2, 2}, {58, 64, 139, 154});
  ExpectValues(ops::MatMul(a, a.Transpose(0, 1)), {2, 2}, {14, 32, 32, 77});
}

TEST(MatMulTest, StridedOperandsMatchNaive) {
  constexpr int64_t m = 5, k = 7, n = 3;
  const std::vector<std::pair<std::string, Tensor>> lhs = {
      {"plain", Rand({m, k}, 80)},
      {"transposed", Rand({k, m}, 81).Transpose(0, 1)},
      {"row-sliced", Rand({m, k + 4}, 82).Slice(1, 2, k + 2)},
      {"expanded", Rand({1, k}, 83).Expand({m, k})},
      {"step", Rand({2 * m, k}, 84).Slice(0, 0, 2 * m, 2)},
      {"col-step", Rand({m, 2 * k}, 85).Slice(1, 1, 2 * k, 2)},
  };
  const std::vector<std::pair<std::string, Tensor>> rhs = {
      {"plain", Rand({k, n}, 90)},
      {"transposed", Rand({n, k}, 91).Transpose(0, 1)},
      {"row-sliced", Rand({k, n + 5}, 92).Slice(1, 1, n + 1)},
      {"expanded", Rand({k, 1}, 93).Expand({k, n})},
      {"col-step", Rand({k, 3 * n}, 94).Slice(1, 0, 3 * n, 3)},
  };
  for (const auto& [na, a] : lhs) {
    for (const auto& [nb, b] : rhs) {
      SCOPED_TRACE(na + " x " + nb);
      ASSERT_EQ(a.shape(), Shape({m, k}));
      ASSERT_EQ(b.shape(), Shape({k, n}));
      ExpectValues(ops::MatMul(a, b), {m, n}, NaiveMatMul(a, b), 1e-5);
    }
  }
}

// A batched product in bf16 is bf16 in every OpenMP worker too: each batch
// equals the same product on one thread, and differs from float32's.
TEST(MatMulTest, BatchedBfloat16OnEveryThread) {
  const Tensor a = Rand({4, 16, 32}, 99), b = Rand({4, 32, 8}, 100);
  const Tensor fp32 = ops::MatMul(a, b);
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  SetNumThreads(1);
  const std::vector<float> one = ops::MatMul(a, b).ToVector();
  SetNumThreads(2);
  const std::vector<float> two = ops::MatMul(a, b).ToVector();
  SetNumThreads(0);
  EXPECT_EQ(one, two);
  const std::vector<float> f = fp32.ToVector();
  for (int64_t batch = 0; batch < 4; ++batch) {
    double worst = 0;
    for (int64_t i = batch * 16 * 8; i < (batch + 1) * 16 * 8; ++i) {
      worst = std::max<double>(worst, std::fabs(one[i] - f[i]));
    }
    EXPECT_GT(worst, 1e-5) << "batch " << batch << " was not rounded";
  }
}

TEST(MatMulTest, VectorShapedOperands) {
  const Tensor row = Rand({4, 9}, 95).Slice(0, 2, 3);  // [1, 9], offset
  const Tensor col = Rand({9, 6}, 96).Slice(1, 4, 5);  // [9, 1], stride 6
  ExpectValues(ops::MatMul(row, col), {1, 1}, NaiveMatMul(row, col), 1e-5);
  ExpectValues(ops::MatMul(col, row), {9, 9}, NaiveMatMul(col, row), 1e-5);
  const Tensor rt = Rand({9, 1}, 97).Transpose(0, 1);  // [1, 9], strides {1, 1}
  ExpectValues(ops::MatMul(rt, col), {1, 1}, NaiveMatMul(rt, col), 1e-5);
  const Tensor m = Rand({9, 3}, 98);
  ExpectValues(ops::MatMul(rt, m), {1, 3}, NaiveMatMul(rt, m), 1e-5);
}

TEST(MatMulTest, EmptyInnerDimensionGivesZeros) {
  ExpectValues(ops::MatMul(Tensor::Empty({2, 0}), Tensor::Empty({0, 3})),
               {2, 3}, {0, 0, 0, 0, 0, 0});
}

TEST(MatMulTest, Batched) {
  const Tensor a = Rand({3, 4, 5}, 100);
  const Tensor b = Rand({3, 5, 2}, 101);
  ExpectValues(ops::MatMul(a, b), {3, 4, 2}, NaiveBatchedMatMul(a, b), 1e-5);

  // Transposed inner matrices and a batch dimension that is not outermost.
  const Tensor at = Rand({3, 5, 4}, 102).Transpose(1, 2);
  const Tensor bt = Rand({5, 3, 2}, 103).Transpose(0, 1);
  ExpectValues(ops::MatMul(at, bt), {3, 4, 2}, NaiveBatchedMatMul(at, bt),
               1e-5);
  ExpectValues(ops::MatMul(at.Contiguous(), bt.Contiguous()), {3, 4, 2},
               NaiveBatchedMatMul(at, bt), 1e-5);
}

TEST(MatMulTest, BatchedTimes2DBroadcasts) {
  const Tensor a = Rand({3, 4, 5}, 104);
  const Tensor w = Rand({5, 2}, 105);
  ExpectValues(ops::MatMul(a, w), {3, 4, 2}, NaiveBatchedMatMul(a, w), 1e-5);
  const Tensor wt = Rand({2, 5}, 106).Transpose(0, 1);
  ExpectValues(ops::MatMul(a, wt), {3, 4, 2}, NaiveBatchedMatMul(a, wt), 1e-5);
  const Tensor l = Rand({4, 5}, 107);
  const Tensor r = Rand({3, 5, 2}, 108);
  ExpectValues(ops::MatMul(l, r), {3, 4, 2}, NaiveBatchedMatMul(l, r), 1e-5);
}

// ---- Softmax ----------------------------------------------------------------

std::vector<double> NaiveSoftmax(const Tensor& a, int axis, bool log) {
  std::vector<double> r(a.numel());
  for (int64_t i = 0; i < a.numel(); ++i) {
    std::vector<int64_t> idx = Unravel(i, a.shape());
    const double x = Get(a, idx);
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < a.dim(axis); ++j) {
      idx[axis] = j;
      mx = std::max<double>(mx, Get(a, idx));
    }
    double sum = 0;
    for (int64_t j = 0; j < a.dim(axis); ++j) {
      idx[axis] = j;
      sum += std::exp(Get(a, idx) - mx);
    }
    r[i] = log ? x - mx - std::log(sum) : std::exp(x - mx) / sum;
  }
  return r;
}

TEST(SoftmaxTest, HandComputed) {
  const Tensor x = Tensor::FromVector({1, 2, 3}, {3});
  ExpectValues(ops::Softmax(x), {3}, {0.09003057, 0.24472847, 0.66524096},
               1e-6);
  ExpectValues(ops::LogSoftmax(x), {3}, {-2.40760596, -1.40760596, -0.40760596},
               1e-6);
}

TEST(SoftmaxTest, RowsSumToOne) {
  const Tensor x = ops::MulScalar(Rand({4, 10}, 110), 10);
  const Tensor s = ops::Softmax(x);
  const std::vector<float> sums = ops::Sum(s, {1}).ToVector();
  for (float v : sums) EXPECT_NEAR(v, 1.0, 1e-6);
  for (float v : s.ToVector()) {
    EXPECT_GE(v, 0.0f);
    EXPECT_LE(v, 1.0f);
  }
  ExpectValues(s, {4, 10}, NaiveSoftmax(x, 1, false), 1e-6);
}

TEST(SoftmaxTest, StableForHugeInputs) {
  const Tensor x = Tensor::FromVector({1000, 1001, -1000, -1001}, {2, 2});
  const Tensor s = ops::Softmax(x);
  for (float v : s.ToVector()) EXPECT_TRUE(std::isfinite(v));
  ExpectValues(s, {2, 2}, {0.26894142, 0.73105858, 0.73105858, 0.26894142},
               1e-6);
  const Tensor l = ops::LogSoftmax(x);
  for (float v : l.ToVector()) EXPECT_TRUE(std::isfinite(v));
  ExpectValues(l, {2, 2}, {-1.31326169, -0.31326169, -0.31326169, -1.31326169},
               1e-5);
}

TEST(SoftmaxTest, AlongNonLastAxes) {
  const Tensor x = ops::MulScalar(Rand({2, 3, 4}, 111), 3);
  for (int axis : {0, 1, 2, -2}) {
    SCOPED_TRACE(axis);
    const int a = axis < 0 ? axis + 3 : axis;
    ExpectValues(ops::Softmax(x, axis), {2, 3, 4}, NaiveSoftmax(x, a, false),
                 1e-6);
    ExpectValues(ops::LogSoftmax(x, axis), {2, 3, 4}, NaiveSoftmax(x, a, true),
                 1e-5);
    const std::vector<float> sums =
        ops::Sum(ops::Softmax(x, axis), {axis}).ToVector();
    for (float v : sums) EXPECT_NEAR(v, 1.0, 1e-6);
  }
}

TEST(SoftmaxTest, StridedInput) {
  const Tensor x = Rand({6, 4}, 112).Transpose(0, 1);
  ExpectSame(ops::Softmax(x), ops::Softmax(x.Contiguous()));
  ExpectSame(ops::LogSoftmax(x, 0), ops::LogSoftmax(x.Contiguous(), 0));
  ExpectValues(ops::Softmax(x, 0), {4, 6}, NaiveSoftmax(x, 0, false), 1e-6);
}

TEST(SoftmaxTest, LogSoftmaxIsLogOfSoftmax) {
  const Tensor x = Rand({3, 7}, 113);
  const std::vector<float> ls = ops::LogSoftmax(x).ToVector();
  const std::vector<float> s = ops::Softmax(x).ToVector();
  for (size_t i = 0; i < s.size(); ++i)
    EXPECT_NEAR(ls[i], std::log(s[i]), 1e-6);
}

// ---- Concat -----------------------------------------------------------------

TEST(ConcatTest, AlongAxis0) {
  const Tensor a = Iota({2, 3});
  const Tensor b = Tensor::FromVector({10, 11, 12}, {1, 3});
  ExpectValues(ops::Concat({a, b}, 0), {3, 3}, {0, 1, 2, 3, 4, 5, 10, 11, 12});
  ExpectValues(ops::Concat({b, a, b}, 0), {4, 3},
               {10, 11, 12, 0, 1, 2, 3, 4, 5, 10, 11, 12});
}

TEST(ConcatTest, AlongAxis1AndNegative) {
  const Tensor a = Iota({2, 3});
  const Tensor b = Tensor::FromVector({10, 11, 12, 13}, {2, 2});
  const std::vector<double> want = {0, 1, 2, 10, 11, 3, 4, 5, 12, 13};
  ExpectValues(ops::Concat({a, b}, 1), {2, 5}, want);
  ExpectValues(ops::Concat({a, b}, -1), {2, 5}, want);
}

TEST(ConcatTest, StridedInputsAndInt64) {
  const Tensor a = Iota({3, 2}).Transpose(0, 1);  // [[0, 2, 4], [1, 3, 5]]
  const Tensor b = Tensor::Scalar(9).Expand({2, 1});
  ExpectValues(ops::Concat({a, b}, 1), {2, 4}, {0, 2, 4, 9, 1, 3, 5, 9});
  const Tensor i = ops::Concat(
      {Tensor::FromInt64Vector({1, 2}, {2}), Tensor::FromInt64Vector({3}, {1})},
      0);
  EXPECT_EQ(i.dtype(), DType::kInt64);
  EXPECT_THAT(i.ToInt64Vector(), ElementsAre(1, 2, 3));
  ExpectSame(ops::Concat({a}, 0), a.Contiguous());
}

// The dtype form converts each part: float32 rounds to bf16 (to nearest
// even), bf16 widens exactly, and the parts may differ in dtype.
TEST(ConcatTest, ToADtypeConvertsEachPart) {
  // 1 + 2^-8 rounds to 1 (a tie, to even), 1 + 3 * 2^-8 to 1 + 2^-6.
  const Tensor f = Tensor::FromVector(
      {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -2.5f, 7.0f}, {2, 2});
  const Tensor b =
      Tensor::FromVector({0.5f, 3.0f}, {2, 1}).To(DType::kBfloat16);
  const Tensor y = ops::Concat({f, b}, 1, DType::kBfloat16);
  ASSERT_EQ(y.dtype(), DType::kBfloat16);
  ExpectValues(y.To(DType::kFloat32), {2, 3},
               {1.0, 1.0 + 0x1p-6, 0.5, -2.5, 7.0, 3.0});
  // Back to float32: exact; and strided parts (a transpose) convert too.
  const Tensor wide = ops::Concat({y, f.Transpose(0, 1)}, 1, DType::kFloat32);
  ExpectValues(wide, {2, 5},
               {1.0, 1.0 + 0x1p-6, 0.5, 1.0 + 0x1p-8, -2.5, -2.5, 7.0, 3.0,
                1.0 + 3 * 0x1p-8, 7.0});
  // Large NCHW slices, as DenseNet concatenates channels: the same values
  // as converting the whole float32 result.
  const Tensor a = Rand({3, 5, 7, 9}, 5), c = Rand({3, 2, 7, 9}, 6);
  ExpectSame(ops::Concat({a, c}, 1, DType::kBfloat16),
             ops::Concat({a, c}, 1).To(DType::kBfloat16));
}

// ---- Death tests ------------------------------------------------------------

class OpsDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(OpsDeathTest, AddShapeMismatchNamesBothShapes) {
  EXPECT_DEATH(ops::Add(Tensor::Zeros({2, 3}), Tensor::Zeros({4})),
               "Add: shapes \\[2, 3\\] and \\[4\\] cannot be broadcast");
  EXPECT_DEATH(ops::Mul(Tensor::Zeros({2, 3}), Tensor::Zeros({3, 3})),
               "Mul: shapes \\[2, 3\\] and \\[3, 3\\] cannot be broadcast");
  EXPECT_DEATH(
      ops::Where(Tensor::Zeros({2}), Tensor::Zeros({2}), Tensor::Zeros({3})),
      "Where: shapes \\[2\\] and \\[3\\] cannot be broadcast");
}

// Arithmetic takes float32; bf16 only where an op says so (ReluBackward's y).
TEST_F(OpsDeathTest, Bfloat16WhereNotTaken) {
  const Tensor b = Tensor::Zeros({2}, DType::kBfloat16);
  EXPECT_DEATH(ops::Add(b, Tensor::Zeros({2})),
               "Add: expects float32, got bfloat16 tensor of shape \\[2\\]");
  EXPECT_DEATH(ops::SigmoidBackward(Tensor::Zeros({2}), b),
               "SigmoidBackward: expects float32, got bfloat16");
  EXPECT_DEATH(ops::ReluBackward(b, b),
               "ReluBackward: expects float32, got bfloat16");
}

TEST_F(OpsDeathTest, MatMulShapeErrors) {
  EXPECT_DEATH(ops::MatMul(Tensor::Zeros({2, 3}), Tensor::Zeros({4, 5})),
               "MatMul: inner dimensions differ: \\[2, 3\\] x \\[4, 5\\]");
  EXPECT_DEATH(ops::MatMul(Tensor::Zeros({3}), Tensor::Zeros({3, 2})),
               "MatMul: expects 2-D or 3-D operands, got \\[3\\] and "
               "\\[3, 2\\]");
  EXPECT_DEATH(ops::MatMul(Tensor::Zeros({2, 3, 4}), Tensor::Zeros({3, 4, 5})),
               "MatMul: batch sizes differ: \\[2, 3, 4\\] x \\[3, 4, 5\\]");
}

TEST_F(OpsDeathTest, ConcatOfDifferentDtypesNeedsAnOutputDtype) {
  EXPECT_DEATH(
      ops::Concat({Tensor::Zeros({2}), Tensor::Zeros({2}, DType::kBfloat16)},
                  0),
      "Concat: dtypes differ: float32 and bfloat16");
}

TEST_F(OpsDeathTest, OtherErrors) {
  Tensor dst = Tensor::Zeros({3});
  EXPECT_DEATH(ops::AddInPlace(dst, Tensor::Zeros({2, 3})),
               "AddInPlace: cannot add shape \\[2, 3\\] into \\[3\\]");
  EXPECT_DEATH(ops::Add(Tensor::Zeros({2}, DType::kInt64), Tensor::Zeros({2})),
               "Add: expects float32, got int64 tensor of shape \\[2\\]");
  EXPECT_DEATH(ops::SumTo(Tensor::Zeros({2, 3}), {5}),
               "SumTo: shape \\[5\\] does not broadcast to \\[2, 3\\]");
  EXPECT_DEATH(ops::Clamp(Tensor::Zeros({2}), 1, -1), "Clamp: lo 1 > hi -1");
  EXPECT_DEATH(ops::Sum(Tensor::Zeros({2, 3}), {2}),
               "axis 2 is out of range for shape \\[2, 3\\]");
  EXPECT_DEATH(ops::Max(Tensor::Zeros({2, 0}), 1),
               "Max over empty dimension 1 of \\[2, 0\\]");
  EXPECT_DEATH(ops::Concat({}, 0), "Concat of no tensors");
  EXPECT_DEATH(ops::Concat({Tensor::Zeros({2, 3}), Tensor::Zeros({3, 3})}, 1),
               "Concat along axis 1: shapes \\[2, 3\\] and \\[3, 3\\] differ "
               "in dimension 0");
  EXPECT_DEATH(ops::Concat({Tensor::Zeros({2, 3}), Tensor::Zeros({3})}, 0),
               "Concat: ranks differ: \\[2, 3\\] vs \\[3\\]");
}

}  // namespace
}  // namespace dive
