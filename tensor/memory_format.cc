#include "tensor/memory_format.h"

#include "glog/logging.h"

namespace dive {

bool IsChannelsLast(const Tensor& t) {
  if (t.rank() != 4) return false;
  // Dimensions in memory order (C innermost), each stride the product of
  // the sizes inside it.
  static constexpr int kOrder[] = {1, 3, 2, 0};
  int64_t expected = 1;
  for (int d : kOrder) {
    if (t.dim(d) != 1 && t.strides()[d] != expected) return false;
    expected *= t.dim(d);
  }
  return true;
}

MemoryFormat MemoryFormatOf(const Tensor& t) {
  return !t.is_contiguous() && IsChannelsLast(t) ? MemoryFormat::kChannelsLast
                                                 : MemoryFormat::kContiguous;
}

Tensor EmptyIn(const Shape& shape, DType dtype, MemoryFormat format) {
  if (format == MemoryFormat::kContiguous) return Tensor::Empty(shape, dtype);
  CHECK_EQ(shape.rank(), 4) << "a channels-last tensor is 4-D [N, C, H, W], "
                               "not of shape "
                            << shape;
  return Tensor::Empty({shape[0], shape[2], shape[3], shape[1]}, dtype)
      .Permute({0, 3, 1, 2});
}

Tensor ToMemoryFormat(const Tensor& t, MemoryFormat format) {
  if (format == MemoryFormat::kContiguous) return t.Contiguous();
  if (IsChannelsLast(t)) return t;
  Tensor out = EmptyIn(t.shape(), t.dtype(), format);
  out.CopyFrom(t);
  return out;
}

Tensor DenseOrContiguous(const Tensor& t) {
  return IsChannelsLast(t) ? t : t.Contiguous();
}

}  // namespace dive
