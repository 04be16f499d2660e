#include "tensor/linear.h"

#include <cstdint>

#include "glog/logging.h"
#include "tensor/gemm.h"
#include "tensor/ops.h"

namespace dive {
namespace {

// y [n, out] = x [n, in] w^T + bias, as y^T = w x^T with the frozen w as the
// GEMM's packed left operand (PackWeights keeps it), into y^T's rows
// started at the bias, each finished tile written transposed into y: the
// sums of the unfrozen GEMM, in the same order.
void FrozenLinearForward(const Tensor& x, const Tensor& w, const Tensor& bias,
                         Tensor& y) {
  const int64_t n = x.dim(0), in = x.dim(1), out = w.dim(0);
  thread_local GemmLhs scratch;
  const GemmLhs& a = PackWeights(w, out, in, scratch);
  const float* px = x.data();
  float* py = y.data();
  // B = x^T [in, n].
  const auto b = [px, in](int64_t r0, int64_t rn, int64_t c0, int64_t cn,
                          float* dst, int64_t ld) {
    for (int64_t c = 0; c < cn; ++c) {
      const float* row = px + (c0 + c) * in + r0;
      for (int64_t r = 0; r < rn; ++r) dst[r * ld + c] = row[r];
    }
  };
  const auto store = [py, out](int64_t i0, int64_t rows, int64_t j0,
                               int64_t cols, const float* c, int64_t ldc) {
    for (int64_t j = 0; j < cols; ++j) {
      float* dst = py + (j0 + j) * out + i0;
      for (int64_t i = 0; i < rows; ++i) dst[i] = c[(i0 + i) * ldc + j0 + j];
    }
  };
  Tensor yt = Tensor::Empty({out, n});
  float beta = 0.0f;
  if (bias.defined()) {
    yt.CopyFrom(bias.Reshape({out, 1}));  // broadcast along each row
    beta = 1.0f;
  }
  GemmEpilogue epilogue;
  epilogue.store.emplace(store);
  Gemm(a, n, b, beta, yt.data(), n, epilogue);
}

}  // namespace

Tensor LinearForward(const Tensor& x, const Tensor& w, const Tensor& bias) {
  CHECK_EQ(x.rank(), 2) << "Linear expects input [N, in_features], got "
                        << x.shape();
  CHECK_EQ(w.rank(), 2) << "Linear weight must be [out, in], got " << w.shape();
  CHECK_EQ(x.dim(1), w.dim(1))
      << "Linear: input has " << x.dim(1) << " features but weight "
      << w.shape() << " expects " << w.dim(1);
  const int64_t n = x.dim(0), in = x.dim(1), out = w.dim(0);
  const Tensor xc = x.Contiguous(), wc = w.Contiguous();
  Tensor y = Tensor::Empty({n, out});
  CHECK(!bias.defined() || (bias.rank() == 1 && bias.dim(0) == out))
      << "Linear: bias of shape " << bias.shape() << " for " << out
      << " outputs";
  if (wc.frozen_forms() != nullptr) {
    FrozenLinearForward(xc, wc, bias, y);
    return y;
  }
  float beta = 0.0f;
  if (bias.defined()) {
    y.CopyFrom(bias);  // broadcast over the rows, then added to by the GEMM
    beta = 1.0f;
  }
  Gemm(false, true, n, out, in, 1.0f, xc.data(), in, wc.data(), in, beta,
       y.data(), out);
  return y;
}

Tensor LinearBackwardInput(const Tensor& dy, const Tensor& w) {
  CHECK(dy.rank() == 2 && w.rank() == 2 && dy.dim(1) == w.dim(0))
      << "LinearBackwardInput: dy " << dy.shape() << " for weight "
      << w.shape();
  const int64_t n = dy.dim(0), out = w.dim(0), in = w.dim(1);
  const Tensor g = dy.Contiguous(), wc = w.Contiguous();
  Tensor dx = Tensor::Empty({n, in});
  Gemm(false, false, n, in, out, 1.0f, g.data(), out, wc.data(), in, 0.0f,
       dx.data(), in);
  return dx;
}

Tensor LinearBackwardWeight(const Tensor& dy, const Tensor& x) {
  CHECK(dy.rank() == 2 && x.rank() == 2 && dy.dim(0) == x.dim(0))
      << "LinearBackwardWeight: dy " << dy.shape() << " for input "
      << x.shape();
  const int64_t n = dy.dim(0), out = dy.dim(1), in = x.dim(1);
  const Tensor g = dy.Contiguous(), xc = x.Contiguous();
  Tensor dw = Tensor::Empty({out, in});
  Gemm(true, false, out, in, n, 1.0f, g.data(), out, xc.data(), in, 0.0f,
       dw.data(), in);
  return dw;
}

Tensor LinearBackwardBias(const Tensor& dy) {
  CHECK_EQ(dy.rank(), 2) << "LinearBackwardBias: dy " << dy.shape();
  return ops::Sum(dy, {0});
}

}  // namespace dive
