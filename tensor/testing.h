// File: tensor/testing.h
// -----------------------------------------------------------------------------
//
// Test helpers for kernel tests that check analytic gradients against a
// double-precision reference.
//
// Example:
//
//   auto loss = [&] { return Dot(dy, RefConv(x, w)); };
//   std::vector<double> dx_numeric = CentralDifference(loss, &x, 1e-3);

#ifndef TENSOR_TESTING_H_
#define TENSOR_TESTING_H_

#include <cstddef>
#include <vector>

namespace dive {

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

}  // namespace dive

#endif  // TENSOR_TESTING_H_
