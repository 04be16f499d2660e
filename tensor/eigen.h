// File: tensor/eigen.h
// -----------------------------------------------------------------------------
//
// Eigen views of a contiguous float32 tensor's data, for code that wants
// Eigen's expressions on it: no copy, writes go to the tensor. dive's own
// kernels do not need them; tensor.h does not include Eigen.
//
// Example:
//
//   dive::Tensor x = dive::Tensor::Zeros({2, 3});
//   dive::EigenVector(x).setConstant(1);       // every element 1
//   dive::EigenMatrix(x)(1, 2) = 5;            // x[1, 2]
//   float total = dive::EigenVector(x).sum();  // 10

#ifndef TENSOR_EIGEN_H_
#define TENSOR_EIGEN_H_

#include <cstdint>

#include "Eigen/Core"
#include "tensor/tensor.h"

namespace dive {

using MatrixMap = Eigen::Map<
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
using VectorMap = Eigen::Map<Eigen::VectorXf>;

// All elements in order (CHECK: contiguous float32).
VectorMap EigenVector(const Tensor& t);

// The tensor as a [dim(0), numel / dim(0)] row-major matrix (rank >= 1), or
// split as [rows, cols] (rows * cols == numel); CHECK: contiguous float32.
MatrixMap EigenMatrix(const Tensor& t);
MatrixMap EigenMatrix(const Tensor& t, int64_t rows, int64_t cols);

}  // namespace dive

#endif  // TENSOR_EIGEN_H_
