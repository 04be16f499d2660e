#include "tensor/eigen.h"

#include "glog/logging.h"

namespace dive {

VectorMap EigenVector(const Tensor& t) {
  CHECK(t.is_contiguous()) << "EigenVector of non-contiguous tensor "
                           << t.shape();
  return VectorMap(t.data<float>(), t.numel());
}

MatrixMap EigenMatrix(const Tensor& t) {
  CHECK_GE(t.rank(), 1) << "EigenMatrix of a scalar";
  return EigenMatrix(t, t.dim(0), t.dim(0) == 0 ? 0 : t.numel() / t.dim(0));
}

MatrixMap EigenMatrix(const Tensor& t, int64_t rows, int64_t cols) {
  CHECK(t.is_contiguous()) << "EigenMatrix of non-contiguous tensor "
                           << t.shape();
  CHECK_EQ(rows * cols, t.numel())
      << "EigenMatrix(" << rows << ", " << cols << ") of shape " << t.shape();
  return MatrixMap(t.data<float>(), rows, cols);
}

}  // namespace dive
