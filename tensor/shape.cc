#include "tensor/shape.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"

namespace dive {

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int64_t d : dims_) n *= d;
  return n;
}

int Shape::CanonicalAxis(int axis) const {
  const int r = rank();
  CHECK(axis >= -r && axis < r)
      << "axis " << axis << " is out of range for shape " << *this << " (rank "
      << r << ")";
  return axis < 0 ? axis + r : axis;
}

std::string Shape::ToString() const {
  return absl::StrCat("[", absl::StrJoin(dims_, ", "), "]");
}

std::ostream& operator<<(std::ostream& os, const Shape& shape) {
  return os << shape.ToString();
}

Dims ContiguousStrides(const Shape& shape) {
  Dims strides(shape.rank());
  int64_t s = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    strides[i] = s;
    s *= shape.dims()[i];
  }
  return strides;
}

absl::StatusOr<Shape> BroadcastShapes(const Shape& a, const Shape& b) {
  const int r = std::max(a.rank(), b.rank());
  Dims out(r);
  for (int i = 0; i < r; ++i) {
    const int ia = a.rank() - r + i, ib = b.rank() - r + i;
    const int64_t da = ia >= 0 ? a.dims()[ia] : 1;
    const int64_t db = ib >= 0 ? b.dims()[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shapes ", a.ToString(), " and ", b.ToString(),
          " cannot be broadcast: dimension ", i - r, " is ", da, " vs ", db));
    }
    out[i] = da == 1 ? db : da;
  }
  return Shape(out);
}

absl::StatusOr<Shape> InferShape(const Shape& shape, int64_t numel) {
  Dims dims = shape.dims();
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < static_cast<int>(dims.size()); ++i) {
    if (dims[i] == -1) {
      if (infer >= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "shape ", shape.ToString(), " has more than one -1 dimension"));
      }
      infer = i;
    } else if (dims[i] < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shape ", shape.ToString(), " has a negative dimension"));
    } else {
      known *= dims[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel % known != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot view ", numel, " elements as shape ", shape.ToString()));
    }
    dims[infer] = numel / known;
  } else if (known != numel) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot view ", numel, " elements as shape ",
                     shape.ToString(), " (", known, " elements)"));
  }
  return Shape(dims);
}

}  // namespace dive
