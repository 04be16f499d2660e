// File: cheatsheet/common.h
// -----------------------------------------------------------------------------
//
// Small helpers shared by the cheat sheet's sections: comparing a formula's
// result with dive's, and printing rows of numbers the way the book does.
//
// Example:
//
//   float d = MaxAbsDiff(by_formula, by_dive);   // 0 when they agree exactly
//   std::cout << FormatRow({0.09f, 0.2447f}) << "\n";   // "[0.0900, 0.2447]"

#ifndef CHEATSHEET_COMMON_H_
#define CHEATSHEET_COMMON_H_

#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace dive::cheatsheet {

// MaxAbsDiff()
//
// max |a - b| over all elements; CHECK-fails naming both shapes when they
// differ.
float MaxAbsDiff(const Tensor& a, const Tensor& b);
float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b);

// FormatRow()
//
// "[v0, v1, ...]" with `digits` digits after the point.
std::string FormatRow(const std::vector<float>& values, int digits = 4);

// FormatMatrix()
//
// A rank-1 or rank-2 float tensor as rows of FormatRow, one per line, each
// line prefixed by `indent`; higher ranks are printed as their trailing
// matrices one after the other.
std::string FormatMatrix(const Tensor& t, int digits = 4,
                         const std::string& indent = "  ");

}  // namespace dive::cheatsheet

#endif  // CHEATSHEET_COMMON_H_
