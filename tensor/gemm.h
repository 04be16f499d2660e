// File: tensor/gemm.h
// -----------------------------------------------------------------------------
//
// Single-precision general matrix multiply on row-major buffers, BLAS style:
//
//   C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C
//
// where op(X) is X or its transpose, and lda/ldb/ldc are row strides in
// elements. Every matrix product of the framework (Linear, convolution as
// im2col + GEMM, their gradients) goes through this one function, so its
// speed is the framework's speed; `bench/gemm_benchmark` measures it.
//
// Example (C = A * B^T for A [4, 3], B [5, 3]):
//
//   dive::Gemm(false, true, 4, 5, 3, 1.0f, a, 3, b, 3, 0.0f, c, 5);

#ifndef TENSOR_GEMM_H_
#define TENSOR_GEMM_H_

#include <cstdint>

namespace dive {

void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace dive

#endif  // TENSOR_GEMM_H_
