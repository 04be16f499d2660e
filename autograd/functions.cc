#include "autograd/functions.h"

#include <cmath>
#include <utility>

#include "autograd/trace.h"
#include "tensor/linear.h"
#include "tensor/memory_format.h"
#include "tensor/ops.h"

namespace dive::autograd {
namespace {

// What a broadcasting binary op's backward needs to know about an input:
// whether it wants a gradient and the shape to reduce that gradient to.
struct Operand {
  explicit Operand(const Variable& v)
      : wants_grad(v.requires_grad()), shape(v.shape()) {}
  Tensor Reduce(const Tensor& g) const {
    return wants_grad ? ops::SumTo(g, shape) : Tensor();
  }
  bool wants_grad;
  Shape shape;
};

Variable Unary(const char* op, const Variable& x, Tensor y,
               std::function<Tensor(const Tensor& g)> grad) {
  return Variable::FromOp(op, std::move(y), {x},
                          [grad = std::move(grad)](const Tensor& g) {
                            return std::vector<Tensor>{grad(g)};
                          });
}

// Returns y after `annotate` has set the attributes of the op that produced
// it on the trace; `annotate` runs only while tracing (autograd/trace.h).
template <typename F>
Variable Annotated(Variable y, F annotate) {
  if (TracedOp* op = LastTracedOp()) annotate(*op);
  return y;
}

void AnnotatePool(const Pool2dParams& p, TracedOp& op) {
  op.ints["kernel"] = {p.kernel_h, p.kernel_w};
  op.ints["stride"] = {p.stride_h, p.stride_w};
  op.ints["pad"] = {p.pad_h, p.pad_w};
}

}  // namespace

// ---- Elementwise ------------------------------------------------------------

Variable operator+(const Variable& a, const Variable& b) {
  return Variable::FromOp(
      "Add", ops::Add(a.data(), b.data()), {a, b},
      [oa = Operand(a), ob = Operand(b)](const Tensor& g) {
        return std::vector<Tensor>{oa.Reduce(g), ob.Reduce(g)};
      });
}

Variable operator-(const Variable& a, const Variable& b) {
  return Variable::FromOp(
      "Sub", ops::Sub(a.data(), b.data()), {a, b},
      [oa = Operand(a), ob = Operand(b)](const Tensor& g) {
        return std::vector<Tensor>{
            oa.Reduce(g), ob.wants_grad ? ob.Reduce(ops::Neg(g)) : Tensor()};
      });
}

Variable operator*(const Variable& a, const Variable& b) {
  const Operand oa(a), ob(b);
  return Variable::FromOp(
      "Mul", ops::Mul(a.data(), b.data()), {a, b},
      // Capture each operand's data only when the other needs a gradient.
      [ad = ob.wants_grad ? a.data() : Tensor(),
       bd = oa.wants_grad ? b.data() : Tensor(), oa, ob](const Tensor& g) {
        return std::vector<Tensor>{
            oa.wants_grad ? oa.Reduce(ops::Mul(g, bd)) : Tensor(),
            ob.wants_grad ? ob.Reduce(ops::Mul(g, ad)) : Tensor()};
      });
}

Variable operator/(const Variable& a, const Variable& b) {
  const Tensor bd = b.data();
  Tensor y = ops::Div(a.data(), bd);
  return Variable::FromOp("Div", y, {a, b},
                          [y = b.requires_grad() ? y : Tensor(), bd,
                           oa = Operand(a), ob = Operand(b)](const Tensor& g) {
                            const Tensor g_over_b = ops::Div(g, bd);
                            // d(a/b)/db = -a / b^2 = -(g / b) * y
                            return std::vector<Tensor>{
                                oa.Reduce(g_over_b),
                                ob.wants_grad
                                    ? ob.Reduce(ops::Neg(ops::Mul(g_over_b, y)))
                                    : Tensor()};
                          });
}

Variable operator-(const Variable& a) {
  return Unary("Neg", a, ops::Neg(a.data()),
               [](const Tensor& g) { return ops::Neg(g); });
}

Variable operator+(const Variable& a, float s) {
  return Annotated(Unary("AddScalar", a, ops::AddScalar(a.data(), s),
                         [](const Tensor& g) { return g; }),
                   [s](TracedOp& op) { op.floats["value"] = s; });
}

Variable operator-(const Variable& a, float s) { return a + (-s); }

Variable operator*(const Variable& a, float s) {
  return Annotated(Unary("MulScalar", a, ops::MulScalar(a.data(), s),
                         [s](const Tensor& g) { return ops::MulScalar(g, s); }),
                   [s](TracedOp& op) { op.floats["value"] = s; });
}

Variable operator*(float s, const Variable& a) { return a * s; }

Variable operator/(const Variable& a, float s) { return a * (1.0f / s); }

Variable Exp(const Variable& x) {
  Tensor y = ops::Exp(x.data());
  return Unary("Exp", x, y, [y](const Tensor& g) { return ops::Mul(g, y); });
}

Variable Log(const Variable& x) {
  const Tensor xd = x.data();
  return Unary("Log", x, ops::Log(xd),
               [xd](const Tensor& g) { return ops::Div(g, xd); });
}

Variable Sqrt(const Variable& x) {
  Tensor y = ops::Sqrt(x.data());
  return Unary("Sqrt", x, y, [y](const Tensor& g) {
    return ops::Div(ops::MulScalar(g, 0.5f), y);
  });
}

Variable Square(const Variable& x) {
  const Tensor xd = x.data();
  return Unary("Square", x, ops::Square(xd), [xd](const Tensor& g) {
    return ops::Mul(g, ops::MulScalar(xd, 2.0f));
  });
}

Variable Pow(const Variable& x, float e) {
  const Tensor xd = x.data();
  return Annotated(Unary("Pow", x, ops::PowScalar(xd, e),
                         [xd, e](const Tensor& g) {
                           return ops::Mul(
                               g,
                               ops::MulScalar(ops::PowScalar(xd, e - 1.0f), e));
                         }),
                   [e](TracedOp& op) { op.floats["exponent"] = e; });
}

Variable Relu(const Variable& x) {
  Tensor y = ops::Relu(x.data());
  return Unary("Relu", x, y,
               [y](const Tensor& g) { return ops::ReluBackward(g, y); });
}

Variable Sigmoid(const Variable& x) {
  Tensor y = ops::Sigmoid(x.data());
  return Unary("Sigmoid", x, y,
               [y](const Tensor& g) { return ops::SigmoidBackward(g, y); });
}

Variable Tanh(const Variable& x) {
  Tensor y = ops::Tanh(x.data());
  return Unary("Tanh", x, y,
               [y](const Tensor& g) { return ops::TanhBackward(g, y); });
}

// ---- Reductions -------------------------------------------------------------

Variable Sum(const Variable& x, const std::vector<int>& axes, bool keepdim) {
  const Shape xs = x.shape();
  const Tensor kept_sum = ops::Sum(x.data(), axes, /*keepdim=*/true);
  const Shape kept = kept_sum.shape();
  Tensor y = kept_sum;
  if (!keepdim) {
    Shape dropped;
    std::vector<bool> reduced(xs.rank(), axes.empty());
    for (int axis : axes) reduced[xs.CanonicalAxis(axis)] = true;
    for (int i = 0; i < xs.rank(); ++i) {
      if (!reduced[i]) dropped.push_back(xs.dims()[i]);
    }
    y = kept_sum.View(dropped);
  }
  return Annotated(Unary("Sum", x, y,
                         [xs, kept](const Tensor& g) {
                           return g.Reshape(kept).Expand(xs).Contiguous();
                         }),
                   [&](TracedOp& op) {
                     for (int axis : axes) {
                       op.ints["axes"].push_back(xs.CanonicalAxis(axis));
                     }
                     op.ints["keepdim"] = {keepdim};
                   });
}

Variable Mean(const Variable& x, const std::vector<int>& axes, bool keepdim) {
  Variable s = Sum(x, axes, keepdim);
  const int64_t count = s.numel() == 0 ? 0 : x.numel() / s.numel();
  return s * (count == 0 ? 0.0f : 1.0f / static_cast<float>(count));
}

// ---- Shape ------------------------------------------------------------------

Variable Reshape(const Variable& x, const Shape& shape) {
  const Shape xs = x.shape();
  return Unary("Reshape", x, x.data().Reshape(shape),
               [xs](const Tensor& g) { return g.Reshape(xs); });
}

Variable Flatten(const Variable& x, int start, int end) {
  const Shape xs = x.shape();
  return Annotated(Unary("Flatten", x, x.data().Flatten(start, end),
                         [xs](const Tensor& g) { return g.Reshape(xs); }),
                   [&](TracedOp& op) {
                     op.ints["start"] = {xs.CanonicalAxis(start)};
                     op.ints["end"] = {xs.CanonicalAxis(end)};
                   });
}

Variable Transpose(const Variable& x, int a, int b) {
  return Annotated(Unary("Transpose", x, x.data().Transpose(a, b),
                         [a, b](const Tensor& g) { return g.Transpose(a, b); }),
                   [&](TracedOp& op) {
                     op.ints["axes"] = {x.shape().CanonicalAxis(a),
                                        x.shape().CanonicalAxis(b)};
                   });
}

namespace {

// The Concat node of y = the parts xs joined along axis.
Variable ConcatNode(const std::vector<Variable>& xs, int axis, Tensor y) {
  axis = y.shape().CanonicalAxis(axis);
  std::vector<int64_t> sizes;
  for (const Variable& x : xs) sizes.push_back(x.dim(axis));
  return Annotated(
      Variable::FromOp("Concat", std::move(y), xs,
                       [sizes, axis](const Tensor& g) {
                         // Each in g's layout, channels-last or contiguous.
                         const MemoryFormat format = MemoryFormatOf(g);
                         std::vector<Tensor> grads;
                         int64_t at = 0;
                         for (int64_t size : sizes) {
                           grads.push_back(ToMemoryFormat(
                               g.Slice(axis, at, at + size), format));
                           at += size;
                         }
                         return grads;
                       }),
      [axis](TracedOp& op) { op.ints["axis"] = {axis}; });
}

std::vector<Tensor> DataOf(const std::vector<Variable>& xs) {
  std::vector<Tensor> data;
  data.reserve(xs.size());
  for (const Variable& x : xs) data.push_back(x.data());
  return data;
}

}  // namespace

Variable Concat(const std::vector<Variable>& xs, int axis) {
  return ConcatNode(xs, axis, ops::Concat(DataOf(xs), axis));
}

Variable Concat(const std::vector<Variable>& xs, int axis, DType output_dtype) {
  return ConcatNode(xs, axis, ops::Concat(DataOf(xs), axis, output_dtype));
}

// ---- Linear algebra ---------------------------------------------------------

Variable MatMul(const Variable& a, const Variable& b) {
  CHECK(a.rank() == 2 && b.rank() == 2) << "MatMul expects 2-D operands, got "
                                        << a.shape() << " and " << b.shape();
  const Tensor ad = a.data(), bd = b.data();
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return Variable::FromOp(
      "MatMul", ops::MatMul(ad, bd), {a, b}, [ad, bd, ga, gb](const Tensor& g) {
        return std::vector<Tensor>{
            ga ? ops::MatMul(g, bd.Transpose(0, 1)) : Tensor(),
            gb ? ops::MatMul(ad.Transpose(0, 1), g) : Tensor()};
      });
}

Variable Linear(const Variable& x, const Variable& weight,
                const Variable& bias) {
  const Tensor xd = x.data().Contiguous(), wd = weight.data().Contiguous();
  Tensor y = LinearForward(xd, wd, bias.defined() ? bias.data() : Tensor());
  const bool gx = x.requires_grad(), gw = weight.requires_grad(),
             gb = bias.requires_grad();
  return Variable::FromOp(
      "Linear", y, {x, weight, bias.defined() ? bias : Variable()},
      [xd = gw ? xd : Tensor(), wd = gx ? wd : Tensor(), gx, gw,
       gb](const Tensor& grad) {
        const Tensor g = grad.Contiguous();
        return std::vector<Tensor>{
            gx ? LinearBackwardInput(g, wd) : Tensor(),
            gw ? LinearBackwardWeight(g, xd) : Tensor(),
            gb ? LinearBackwardBias(g) : Tensor()};
      });
}

// ---- Softmax ----------------------------------------------------------------

Variable Softmax(const Variable& x, int axis) {
  Tensor y = ops::Softmax(x.data(), axis);
  Variable out = Unary("Softmax", x, y, [y, axis](const Tensor& g) {
    // dx = y * (g - sum(g * y))
    Tensor gy = ops::Mul(g, y);
    return ops::Sub(gy, ops::Mul(y, ops::Sum(gy, {axis}, true)));
  });
  return Annotated(out, [&](TracedOp& op) {
    op.ints["axis"] = {x.shape().CanonicalAxis(axis)};
  });
}

Variable LogSoftmax(const Variable& x, int axis) {
  Tensor y = ops::LogSoftmax(x.data(), axis);
  Variable out = Unary("LogSoftmax", x, y, [y, axis](const Tensor& g) {
    // dx = g - softmax * sum(g)
    return ops::Sub(g, ops::Mul(ops::Exp(y), ops::Sum(g, {axis}, true)));
  });
  return Annotated(out, [&](TracedOp& op) {
    op.ints["axis"] = {x.shape().CanonicalAxis(axis)};
  });
}

// ---- Convolution and pooling ------------------------------------------------

Variable Conv2d(const Variable& x, const Variable& weight, const Variable& bias,
                const Conv2dParams& params) {
  return Conv2d(x, weight, bias, params, Variable(), /*relu=*/false);
}

Variable Conv2d(const Variable& x, const Variable& weight, const Variable& bias,
                const Conv2dParams& params, const Variable& residual,
                bool relu, DType output_dtype) {
  // A channels-last x stays so (tensor/memory_format.h): oneDNN reads it as
  // it lies.
  const Tensor xd = DenseOrContiguous(x.data()),
               wd = weight.data().Contiguous();
  const bool fused = residual.defined() || relu;
  Tensor y = Conv2dForward(
      xd, wd, bias.defined() ? bias.data() : Tensor(), params,
      {.residual = residual.defined() ? residual.data() : Tensor(),
       .relu = relu,
       .dtype = output_dtype});
  const bool gx = x.requires_grad(), gw = weight.requires_grad(),
             gb = bias.requires_grad(), gr = residual.requires_grad();
  const Shape xs = x.shape(), ws = weight.shape();
  std::vector<Variable> inputs = {x, weight, bias};
  if (residual.defined()) inputs.push_back(residual);
  Variable out = Variable::FromOp(
      fused ? "FusedConv2d" : "Conv2d", y, inputs,
      [xd = gw ? xd : Tensor(), wd = gx ? wd : Tensor(),
       yd = relu ? y : Tensor(), xs, ws, params, gx, gw, gb, gr,
       has_residual = residual.defined()](const Tensor& grad) {
        // One call for all of them: the ReLU's mask, the bias's sums and
        // dy's layout for oneDNN are shared (tensor/conv.h).
        Conv2dGrads g = Conv2dBackward(
            grad, yd, xd, xs, wd, ws, params,
            {.input = gx, .weight = gw, .bias = gb, .sum = has_residual && gr});
        std::vector<Tensor> grads = {std::move(g.input), std::move(g.weight),
                                     std::move(g.bias)};
        if (has_residual) grads.push_back(std::move(g.sum));
        return grads;
      });
  return Annotated(out, [&](TracedOp& op) {
    op.ints["stride"] = {params.stride_h, params.stride_w};
    op.ints["pad"] = {params.pad_h, params.pad_w};
    if (fused) op.ints["relu"] = {relu ? 1 : 0};
  });
}

Variable MaxPool2d(const Variable& x, const Pool2dParams& params,
                   DType y_dtype) {
  // Where no gradient will flow back (inference), no argmax is computed.
  Tensor argmax;
  const bool backward = x.requires_grad() && GradEnabled();
  Tensor y =
      MaxPool2dForward(x.data(), params, backward ? &argmax : nullptr, y_dtype);
  const Shape xs = x.shape();
  return Annotated(Unary("MaxPool2d", x, y,
                         [argmax, xs](const Tensor& g) {
                           return MaxPool2dBackward(g, argmax, xs);
                         }),
                   [&](TracedOp& op) { AnnotatePool(params, op); });
}

Variable AvgPool2d(const Variable& x, const Pool2dParams& params) {
  Tensor y = AvgPool2dForward(x.data().Contiguous(), params);
  const Shape xs = x.shape();
  return Annotated(Unary("AvgPool2d", x, y,
                         [xs, params](const Tensor& g) {
                           return AvgPool2dBackward(g.Contiguous(), xs, params);
                         }),
                   [&](TracedOp& op) { AnnotatePool(params, op); });
}

Variable GlobalAvgPool2d(const Variable& x) {
  CHECK_EQ(x.rank(), 4) << "GlobalAvgPool2d expects [N, C, H, W], got "
                        << x.shape();
  Variable y;
  {
    const OpaqueTraceScope opaque;
    // A bf16 x (a stored activation) through the pooling kernel, which
    // reads bf16.
    y = x.data().dtype() == DType::kBfloat16
            ? AvgPool2d(x, Pool2dParams{x.dim(2), x.dim(3), x.dim(2), x.dim(3)})
            : Mean(x, {2, 3}, /*keepdim=*/true);
  }
  RecordTracedOp("GlobalAvgPool2d", {x.data()}, y.data());
  return y;
}

// ---- Normalization and regularization ---------------------------------------

Variable BatchNorm(const Variable& x, const Variable& gamma,
                   const Variable& beta, const Tensor& running_mean,
                   const Tensor& running_var, bool training, float momentum,
                   float eps, bool relu, DType output_dtype) {
  CHECK(x.rank() == 2 || x.rank() == 4)
      << "BatchNorm expects [N, C] or [N, C, H, W], got " << x.shape();
  const int64_t c = x.dim(1);
  CHECK(gamma.shape() == Shape({c}) && beta.shape() == Shape({c}))
      << "BatchNorm: input has " << c << " channels but gamma is "
      << gamma.shape() << " and beta " << beta.shape();
  const auto annotate = [&](TracedOp& op) {
    op.ints["training"] = {training ? 1 : 0};
    op.floats["eps"] = eps;
    if (relu) op.ints["relu"] = {1};
  };
  const bool wants_grad =
      GradEnabled() &&
      (x.requires_grad() || gamma.requires_grad() || beta.requires_grad());
  if (!training) {
    Variable y;
    if (!wants_grad) {
      // Inference: y = x * scale + shift (then ReLU) in one pass.
      y = Variable(BatchNormEvalForward(x.data(), gamma.data(), beta.data(),
                                        running_mean, running_var, eps, relu,
                                        output_dtype));
    } else {
      // y = x * scale + shift with per-channel scale = gamma / sqrt(var +
      // eps) and shift = beta - mean * scale; composed from primitives so
      // the gradients with respect to x, gamma and beta come for free.
      Shape bshape{c};
      if (x.rank() == 4) bshape = Shape{c, 1, 1};
      const OpaqueTraceScope opaque;  // traced as one BatchNorm op
      const Tensor inv_std = ops::Div(
          Tensor::Scalar(1.0f), ops::Sqrt(ops::AddScalar(running_var, eps)));
      Variable scale = gamma * Variable(inv_std);
      Variable shift = beta - scale * Variable(running_mean);
      y = x * Reshape(scale, bshape) + Reshape(shift, bshape);
      if (relu) y = Relu(y);
    }
    if (TracedOp* op = RecordTracedOp(
            "BatchNorm",
            {x.data(), gamma.data(), beta.data(), running_mean, running_var},
            y.data())) {
      annotate(*op);
    }
    return y;
  }
  const Tensor xd = DenseOrContiguous(x.data());
  BatchNormSaved saved;
  Tensor y = BatchNormTrainForward(xd, gamma.data(), beta.data(), running_mean,
                                   running_var, momentum, eps, &saved, relu,
                                   output_dtype);
  const Tensor gd = gamma.data();
  Variable out = Variable::FromOp(
      "BatchNorm", y, {x, gamma, beta}, [xd, gd, saved](const Tensor& grad) {
        Tensor dx, dgamma, dbeta;
        BatchNormBackward(DenseOrContiguous(grad), xd, gd, saved, &dx, &dgamma,
                          &dbeta);
        return std::vector<Tensor>{dx, dgamma, dbeta};
      });
  return Annotated(out, annotate);
}

Variable ApplyMask(const Variable& x, const Tensor& mask) {
  CHECK(mask.shape() == x.shape())
      << "ApplyMask: mask of shape " << mask.shape() << " for input "
      << x.shape();
  return Unary("Dropout", x, ops::Mul(x.data(), mask),
               [mask](const Tensor& g) { return ops::Mul(g, mask); });
}

Variable Dropout(const Variable& x, float p, Generator& gen) {
  CHECK(p >= 0.0f && p < 1.0f)
      << "Dropout probability " << p << " is outside [0, 1)";
  if (p == 0.0f) return x;
  Tensor mask = gen.Bernoulli(x.shape(), 1.0f - p);
  ops::MulScalarInPlace(mask, 1.0f / (1.0f - p));
  return ApplyMask(x, mask);
}

// ---- Losses -----------------------------------------------------------------

Variable SoftmaxCrossEntropy(const Variable& logits, const Tensor& labels) {
  CHECK_EQ(logits.rank(), 2) << "SoftmaxCrossEntropy expects logits [N, C], "
                             << "got " << logits.shape();
  CHECK(labels.dtype() == DType::kInt64 && labels.rank() == 1 &&
        labels.dim(0) == logits.dim(0))
      << "SoftmaxCrossEntropy: labels must be int64 [" << logits.dim(0)
      << "], got " << DTypeName(labels.dtype()) << " " << labels.shape();
  const int64_t n = logits.dim(0), c = logits.dim(1);
  const Tensor lab = labels.Contiguous();
  const int64_t* l = lab.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    CHECK(l[i] >= 0 && l[i] < c)
        << "SoftmaxCrossEntropy: label " << l[i] << " at index " << i
        << " is outside [0, " << c << ")";
  }
  const Tensor logp = ops::LogSoftmax(logits.data(), 1);
  const float* lp = logp.data();
  double loss = 0.0;
  for (int64_t i = 0; i < n; ++i) loss -= lp[i * c + l[i]];
  Tensor y = Tensor::Scalar(n == 0 ? 0.0f : static_cast<float>(loss / n));
  return Unary("SoftmaxCrossEntropy", logits, y,
               [logp, lab, n, c](const Tensor& g) {
                 // d/dlogits = (softmax - onehot(label)) * g / N
                 const float scale = g.item() / static_cast<float>(n);
                 Tensor dx = ops::Exp(logp);
                 float* d = dx.data();
                 const int64_t* l = lab.data<int64_t>();
                 for (int64_t i = 0; i < n; ++i) d[i * c + l[i]] -= 1.0f;
                 ops::MulScalarInPlace(dx, scale);
                 return dx;
               });
}

Variable MseLoss(const Variable& prediction, const Variable& target) {
  CHECK(prediction.shape() == target.shape())
      << "MseLoss: prediction " << prediction.shape() << " and target "
      << target.shape() << " differ";
  return Mean(Square(prediction - target));
}

}  // namespace dive::autograd
