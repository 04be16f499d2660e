// File: tensor/shape.h
// -----------------------------------------------------------------------------
//
// `Shape` is the list of a tensor's dimensions, outermost first (row-major,
// NCHW for images). It is a small value type: copying it is cheap and it never
// allocates for up to six dimensions.
//
// Example:
//
//   dive::Shape s{256, 1, 28, 28};
//   s.rank();      // 4
//   s.numel();     // 200704
//   s[-1];         // 28 (negative indices count from the back)
//   LOG(INFO) << s;  // "[256, 1, 28, 28]"
//
// Broadcasting follows NumPy: shapes are aligned at their last dimension and
// each pair of dimensions must be equal or contain a 1.

#ifndef TENSOR_SHAPE_H_
#define TENSOR_SHAPE_H_

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace dive {

using Dims = absl::InlinedVector<int64_t, 6>;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(absl::Span<const int64_t> dims)
      : dims_(dims.begin(), dims.end()) {}

  int rank() const { return static_cast<int>(dims_.size()); }
  // Product of the dimensions; 1 for a scalar (rank 0).
  int64_t numel() const;

  // Dimension `i`; negative `i` counts from the back. CHECK-fails when out of
  // range, naming the shape.
  int64_t operator[](int i) const { return dims_[CanonicalAxis(i)]; }
  int64_t& operator[](int i) { return dims_[CanonicalAxis(i)]; }

  // Maps a possibly negative axis into [0, rank). CHECK-fails with a message
  // naming the shape when `axis` is out of range.
  int CanonicalAxis(int axis) const;

  const Dims& dims() const { return dims_; }
  void push_back(int64_t d) { dims_.push_back(d); }
  auto begin() const { return dims_.begin(); }
  auto end() const { return dims_.end(); }

  bool operator==(const Shape& o) const { return dims_ == o.dims_; }
  bool operator!=(const Shape& o) const { return dims_ != o.dims_; }

  // "[2, 3, 4]".
  std::string ToString() const;

 private:
  Dims dims_;
};

std::ostream& operator<<(std::ostream& os, const Shape& shape);

// Row-major (C-order) strides of `shape`, in elements.
Dims ContiguousStrides(const Shape& shape);

// The NumPy broadcast of two shapes, or InvalidArgument naming both shapes.
absl::StatusOr<Shape> BroadcastShapes(const Shape& a, const Shape& b);

// Resolves a single -1 in `shape` against `numel` elements, or returns
// InvalidArgument when the sizes cannot match.
absl::StatusOr<Shape> InferShape(const Shape& shape, int64_t numel);

}  // namespace dive

#endif  // TENSOR_SHAPE_H_
