#include "tensor/linear.h"

#include <cstdint>

#include "glog/logging.h"
#include "tensor/gemm.h"
#include "tensor/ops.h"

namespace dive {

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
  float beta = 0.0f;
  if (bias.defined()) {
    CHECK(bias.rank() == 1 && bias.dim(0) == out)
        << "Linear: bias of shape " << bias.shape() << " for " << out
        << " outputs";
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
