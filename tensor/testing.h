// File: tensor/testing.h
// -----------------------------------------------------------------------------
//
// Test helpers for kernel tests that check values and analytic gradients
// against a double-precision reference, and for tests that run a kernel on
// each of its libraries (ScopedConvLibrary, ScopedQConvLibrary).
//
// Example:
//
//   auto loss = [&] { return Dot(dy, RefConv(x, w)); };
//   std::vector<double> dx_numeric = CentralDifference(loss, &x, 1e-3);
//   ExpectClose(dx, dx_numeric, 1e-3, 1e-3, "dx");
//
//   {
//     const ScopedConvLibrary use(ConvLibrary::kOneDnn);
//     ...  // convolutions here run on oneDNN
//   }

#ifndef TENSOR_TESTING_H_
#define TENSOR_TESTING_H_

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tensor/conv.h"
#include "tensor/qconv.h"
#include "tensor/tensor.h"

namespace dive {

// The values of a float32 tensor as doubles.
inline std::vector<double> ToDouble(const Tensor& t) {
  const std::vector<float> v = t.ToVector();
  return std::vector<double>(v.begin(), v.end());
}

// Elementwise |got - want| <= atol + rtol * |want|, reporting the first few
// mismatches with their flat index.
inline void ExpectClose(const Tensor& got, const std::vector<double>& want,
                        double atol = 1e-4, double rtol = 1e-4,
                        const std::string& what = "") {
  const std::vector<float> g = got.ToVector();
  ASSERT_EQ(g.size(), want.size()) << what;
  int failures = 0;
  for (size_t i = 0; i < g.size() && failures < 5; ++i) {
    if (!(std::abs(g[i] - want[i]) <= atol + rtol * std::abs(want[i]))) {
      ADD_FAILURE() << what << " at flat index " << i << ": got " << g[i]
                    << ", want " << want[i];
      ++failures;
    }
  }
}

// ExpectClose within 1e-5 of float32 values written out by hand.
inline void ExpectValues(const Tensor& got, const std::vector<float>& want,
                         const std::string& what = "") {
  ExpectClose(got, std::vector<double>(want.begin(), want.end()), 1e-5, 1e-5,
              what);
}

inline double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// d loss / d v[i] for every i by central differences with step `h`; `loss`
// reads `*v`, which is restored after each perturbation.
template <typename Loss>
std::vector<double> CentralDifference(const Loss& loss, std::vector<double>* v,
                                      double h) {
  std::vector<double> g(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    const double saved = (*v)[i];
    (*v)[i] = saved + h;
    const double up = loss();
    (*v)[i] = saved - h;
    const double down = loss();
    (*v)[i] = saved;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

// The int8 kernels' requantization of one exact sum v (bias included),
// computed in double (tensor/qgemm.h): to uint8 with `zero_point`, ReLU
// clamping at the zero point, or to float32.
inline uint8_t RefUint8(int64_t v, float scale, int zero_point, bool relu) {
  const double q = std::nearbyint(static_cast<double>(scale) * v) + zero_point;
  const double lo = relu ? zero_point : 0;
  return static_cast<uint8_t>(std::min(255.0, std::max(lo, q)));
}
inline float RefFloat(int64_t v, float scale, bool relu) {
  const float f = static_cast<float>(static_cast<double>(scale) * v);
  return relu && f < 0 ? 0.0f : f;
}

// Sets the process's ConvLibrary (tensor/conv.h) for a scope.
class ScopedConvLibrary {
 public:
  explicit ScopedConvLibrary(ConvLibrary library) : saved_(GetConvLibrary()) {
    SetConvLibrary(library);
  }
  ~ScopedConvLibrary() { SetConvLibrary(saved_); }
  ScopedConvLibrary(const ScopedConvLibrary&) = delete;
  ScopedConvLibrary& operator=(const ScopedConvLibrary&) = delete;

 private:
  const ConvLibrary saved_;
};

// Sets the process's QConvLibrary (tensor/qconv.h) for a scope.
class ScopedQConvLibrary {
 public:
  explicit ScopedQConvLibrary(QConvLibrary library)
      : saved_(GetQConvLibrary()) {
    SetQConvLibrary(library);
  }
  ~ScopedQConvLibrary() { SetQConvLibrary(saved_); }
  ScopedQConvLibrary(const ScopedQConvLibrary&) = delete;
  ScopedQConvLibrary& operator=(const ScopedQConvLibrary&) = delete;

 private:
  const QConvLibrary saved_;
};

}  // namespace dive

#endif  // TENSOR_TESTING_H_
