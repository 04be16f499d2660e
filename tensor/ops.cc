#include "tensor/ops.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>

#include "Eigen/Core"
#include "tensor/gemm.h"
#include "tensor/memory_format.h"
#include "tensor/parallel.h"
#include "tensor/strided.h"

namespace dive::ops {
namespace {

void CheckDType(const char* op, const Tensor& t, DType dtype) {
  CHECK(t.defined()) << op << ": undefined tensor";
  CHECK(t.dtype() == dtype)
      << op << ": expects " << DTypeName(dtype) << ", got "
      << DTypeName(t.dtype()) << " tensor of shape " << t.shape();
}

void CheckFloat(const char* op, const Tensor& t) {
  CheckDType(op, t, DType::kFloat32);
}

Shape Broadcast(const char* op, const Shape& a, const Shape& b) {
  absl::StatusOr<Shape> s = BroadcastShapes(a, b);
  CHECK(s.ok()) << op << ": " << s.status().message();
  return *s;
}

// The layout of an elementwise result of `shape`: channels-last where an
// operand of that whole shape is (tensor/memory_format.h), else contiguous.
MemoryFormat ResultFormat(const Shape& shape,
                          std::initializer_list<const Tensor*> operands) {
  for (const Tensor* t : operands) {
    if (t->shape() == shape &&
        MemoryFormatOf(*t) == MemoryFormat::kChannelsLast) {
      return MemoryFormat::kChannelsLast;
    }
  }
  return MemoryFormat::kContiguous;
}

template <typename F>
Tensor Unary(const char* op, const Tensor& a, F f) {
  CheckFloat(op, a);
  const Tensor out =
      EmptyIn(a.shape(), DType::kFloat32, ResultFormat(a.shape(), {&a}));
  float* o = out.data();
  const float* pa = a.data();
  ForEachStrided<2>(
      a.shape(), {&out.strides(), &a.strides()},
      [&](int64_t n, const Offsets<2>& off, const Offsets<2>& st) {
        float* oo = o + off[0];
        const float* aa = pa + off[1];
        if (st[1] == 1) {
          for (int64_t i = 0; i < n; ++i) oo[i] = f(aa[i]);
        } else {
          for (int64_t i = 0; i < n; ++i) oo[i] = f(aa[i * st[1]]);
        }
      });
  return out;
}

// Unary op through Eigen's vectorized array functions (exp, log, tanh, ...),
// which are about ten times faster than their scalar std:: versions.
// `v(x, y)` writes y = f(x) for Eigen array maps of one contiguous run.
template <typename V>
Tensor UnaryArray(const char* op, const Tensor& a, V v) {
  CheckFloat(op, a);
  // Both dense and in the same layout, so element i of one is element i of
  // the other.
  const Tensor c = DenseOrContiguous(a);
  const Tensor out = EmptyIn(a.shape(), DType::kFloat32, MemoryFormatOf(c));
  const float* in = c.data();
  float* o = out.data();
  ForEachStrided1(out.shape(), out.strides(),
                  [&](int64_t n, int64_t off, int64_t /*stride=1*/) {
                    Eigen::Map<const Eigen::ArrayXf> x(in + off, n);
                    Eigen::Map<Eigen::ArrayXf> y(o + off, n);
                    v(x, y);
                  });
  return out;
}

// f(a, b) elementwise with broadcasting; a is float32, b float32 or, for
// the ops that read a stored activation (Tb = bfloat16), bf16.
template <typename Tb = float, typename F>
Tensor Binary(const char* op, const Tensor& a, const Tensor& b, F f) {
  CheckFloat(op, a);
  CheckDType(op, b, DTypeOf<Tb>());
  const Shape shape = Broadcast(op, a.shape(), b.shape());
  const Tensor out =
      EmptyIn(shape, DType::kFloat32, ResultFormat(shape, {&a, &b}));
  const Tensor ea = a.Expand(shape), eb = b.Expand(shape);
  float* o = out.data();
  const float* pa = ea.data();
  const Tb* pb = eb.data<Tb>();
  ForEachStrided<3>(
      shape, {&out.strides(), &ea.strides(), &eb.strides()},
      [&](int64_t n, const Offsets<3>& off, const Offsets<3>& st) {
        float* oo = o + off[0];
        const float* aa = pa + off[1];
        const Tb* bb = pb + off[2];
        if (st[1] == 1 && st[2] == 1) {
          for (int64_t i = 0; i < n; ++i) oo[i] = f(aa[i], bb[i]);
        } else if (st[1] == 1 && st[2] == 0) {
          const Tb bv = *bb;
          for (int64_t i = 0; i < n; ++i) oo[i] = f(aa[i], bv);
        } else if (st[1] == 0 && st[2] == 1) {
          const float av = *aa;
          for (int64_t i = 0; i < n; ++i) oo[i] = f(av, bb[i]);
        } else {
          for (int64_t i = 0; i < n; ++i)
            oo[i] = f(aa[i * st[1]], bb[i * st[2]]);
        }
      });
  return out;
}

// Moves `axis` last and returns a contiguous [rows, len] layout of it.
Tensor AxisLast(const Tensor& a, int axis) {
  std::vector<int> order;
  for (int i = 0; i < a.rank(); ++i) {
    if (i != axis) order.push_back(i);
  }
  order.push_back(axis);
  return a.Permute(order).Contiguous();
}

// Inverse of AxisLast for a result of the permuted shape.
Tensor AxisBack(const Tensor& t, int axis) {
  std::vector<int> order(t.rank());
  for (int i = 0, j = 0; i < t.rank(); ++i) {
    order[i] = i == axis ? t.rank() - 1 : j++;
  }
  return t.Permute(order).Contiguous();
}

Shape ReducedShape(const Shape& shape, const std::vector<bool>& reduce,
                   bool keepdim) {
  Shape out;
  for (int i = 0; i < shape.rank(); ++i) {
    if (!reduce[i]) {
      out.push_back(shape.dims()[i]);
    } else if (keepdim) {
      out.push_back(1);
    }
  }
  return out;
}

}  // namespace

// ---- Elementwise ------------------------------------------------------------

Tensor Add(const Tensor& a, const Tensor& b) {
  return Binary("Add", a, b, [](float x, float y) { return x + y; });
}
Tensor Sub(const Tensor& a, const Tensor& b) {
  return Binary("Sub", a, b, [](float x, float y) { return x - y; });
}
Tensor Mul(const Tensor& a, const Tensor& b) {
  return Binary("Mul", a, b, [](float x, float y) { return x * y; });
}
Tensor Div(const Tensor& a, const Tensor& b) {
  return Binary("Div", a, b, [](float x, float y) { return x / y; });
}
Tensor Maximum(const Tensor& a, const Tensor& b) {
  return Binary("Maximum", a, b,
                [](float x, float y) { return x > y ? x : y; });
}
Tensor Minimum(const Tensor& a, const Tensor& b) {
  return Binary("Minimum", a, b,
                [](float x, float y) { return x < y ? x : y; });
}
Tensor Greater(const Tensor& a, const Tensor& b) {
  return Binary("Greater", a, b,
                [](float x, float y) { return x > y ? 1.0f : 0.0f; });
}
Tensor Less(const Tensor& a, const Tensor& b) {
  return Binary("Less", a, b,
                [](float x, float y) { return x < y ? 1.0f : 0.0f; });
}
Tensor Equal(const Tensor& a, const Tensor& b) {
  return Binary("Equal", a, b,
                [](float x, float y) { return x == y ? 1.0f : 0.0f; });
}

Tensor Where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  // where(c, a, b) = b + c' * (a - b) would lose precision and propagate NaN
  // from the unselected side; select explicitly instead.
  CheckFloat("Where", cond);
  const Shape shape = Broadcast(
      "Where", Broadcast("Where", cond.shape(), a.shape()), b.shape());
  Tensor out = Tensor::Empty(shape);
  const Tensor ec = cond.Expand(shape), ea = a.Expand(shape),
               eb = b.Expand(shape);
  float* o = out.data();
  const float *pc = ec.data(), *pa = ea.data(), *pb = eb.data();
  ForEachStrided<4>(
      shape, {&out.strides(), &ec.strides(), &ea.strides(), &eb.strides()},
      [&](int64_t n, const Offsets<4>& off, const Offsets<4>& st) {
        for (int64_t i = 0; i < n; ++i) {
          o[off[0] + i] = pc[off[1] + i * st[1]] != 0.0f
                              ? pa[off[2] + i * st[2]]
                              : pb[off[3] + i * st[3]];
        }
      });
  return out;
}

Tensor AddScalar(const Tensor& a, float s) {
  return Unary("AddScalar", a, [s](float x) { return x + s; });
}
Tensor MulScalar(const Tensor& a, float s) {
  return Unary("MulScalar", a, [s](float x) { return x * s; });
}
Tensor PowScalar(const Tensor& a, float e) {
  if (e == 2.0f) return Square(a);
  return Unary("PowScalar", a, [e](float x) { return std::pow(x, e); });
}
Tensor GreaterScalar(const Tensor& a, float s) {
  return Unary("GreaterScalar", a,
               [s](float x) { return x > s ? 1.0f : 0.0f; });
}
Tensor Clamp(const Tensor& a, float lo, float hi) {
  CHECK_LE(lo, hi) << "Clamp: lo " << lo << " > hi " << hi;
  return Unary("Clamp", a,
               [lo, hi](float x) { return std::min(std::max(x, lo), hi); });
}

Tensor Neg(const Tensor& a) {
  return Unary("Neg", a, [](float x) { return -x; });
}
Tensor Exp(const Tensor& a) {
  return UnaryArray("Exp", a, [](const auto& x, auto& y) { y = x.exp(); });
}
Tensor Log(const Tensor& a) {
  return UnaryArray("Log", a, [](const auto& x, auto& y) { y = x.log(); });
}
Tensor Sqrt(const Tensor& a) {
  return UnaryArray("Sqrt", a, [](const auto& x, auto& y) { y = x.sqrt(); });
}
Tensor Abs(const Tensor& a) {
  return Unary("Abs", a, [](float x) { return std::fabs(x); });
}
Tensor Square(const Tensor& a) {
  return Unary("Square", a, [](float x) { return x * x; });
}
Tensor Relu(const Tensor& a) {
  return Unary("Relu", a, [](float x) { return x > 0.0f ? x : 0.0f; });
}
Tensor Sigmoid(const Tensor& a) {
  return UnaryArray("Sigmoid", a,
                    [](const auto& x, auto& y) { y = x.logistic(); });
}
Tensor Tanh(const Tensor& a) {
  return UnaryArray("Tanh", a, [](const auto& x, auto& y) { y = x.tanh(); });
}

Tensor ReluBackward(const Tensor& grad, const Tensor& y) {
  if (y.defined() && y.dtype() == DType::kBfloat16) {
    // A ReLU's output stored in bf16 (tensor/conv.h): positive exactly where
    // the float32 output is, but for float32 values below bf16's smallest
    // subnormal (|y| < 2^-133), which round to zero.
    return Binary<bfloat16>("ReluBackward", grad, y, [](float g, bfloat16 v) {
      return static_cast<float>(v) > 0.0f ? g : 0.0f;
    });
  }
  return Binary("ReluBackward", grad, y,
                [](float g, float v) { return v > 0.0f ? g : 0.0f; });
}
Tensor SigmoidBackward(const Tensor& grad, const Tensor& y) {
  return Binary("SigmoidBackward", grad, y,
                [](float g, float v) { return g * v * (1.0f - v); });
}
Tensor TanhBackward(const Tensor& grad, const Tensor& y) {
  return Binary("TanhBackward", grad, y,
                [](float g, float v) { return g * (1.0f - v * v); });
}

// ---- In place ---------------------------------------------------------------

void AddInPlace(Tensor& dst, const Tensor& src, float alpha) {
  CheckFloat("AddInPlace", dst);
  CheckFloat("AddInPlace", src);
  CHECK(BroadcastShapes(src.shape(), dst.shape()).ok() &&
        *BroadcastShapes(src.shape(), dst.shape()) == dst.shape())
      << "AddInPlace: cannot add shape " << src.shape() << " into "
      << dst.shape();
  const Tensor es = src.Expand(dst.shape());
  float* d = dst.data();
  const float* s = es.data();
  ForEachStrided<2>(
      dst.shape(), {&dst.strides(), &es.strides()},
      [&](int64_t n, const Offsets<2>& off, const Offsets<2>& st) {
        float* dd = d + off[0];
        const float* ss = s + off[1];
        if (st[0] == 1 && st[1] == 1) {
          for (int64_t i = 0; i < n; ++i) dd[i] += alpha * ss[i];
        } else {
          for (int64_t i = 0; i < n; ++i) {
            dd[i * st[0]] += alpha * ss[i * st[1]];
          }
        }
      });
}

void MulScalarInPlace(Tensor& dst, float s) {
  CheckFloat("MulScalarInPlace", dst);
  float* d = dst.data();
  ForEachStrided1(dst.shape(), dst.strides(),
                  [&](int64_t n, int64_t o, int64_t st) {
                    for (int64_t i = 0; i < n; ++i) d[o + i * st] *= s;
                  });
}

// ---- Reductions -------------------------------------------------------------

Tensor Sum(const Tensor& a, const std::vector<int>& axes, bool keepdim) {
  CheckFloat("Sum", a);
  std::vector<bool> reduce(a.rank(), axes.empty());
  for (int axis : axes) reduce[a.shape().CanonicalAxis(axis)] = true;
  Shape kept;  // keepdim shape
  for (int i = 0; i < a.rank(); ++i) kept.push_back(reduce[i] ? 1 : a.dim(i));
  Tensor out = Tensor::Zeros(kept);
  // Accumulate through a view of `out` broadcast to a's shape: reduced
  // dimensions have stride 0 there, so every input element lands on its sum.
  const Tensor target = out.Expand(a.shape());
  float* o = out.data();
  const float* pa = a.data();
  ForEachStrided<2>(
      a.shape(), {&target.strides(), &a.strides()},
      [&](int64_t n, const Offsets<2>& off, const Offsets<2>& st) {
        float* oo = o + off[0];
        const float* aa = pa + off[1];
        if (st[0] == 0) {
          double acc = 0.0;
          for (int64_t i = 0; i < n; ++i) acc += aa[i * st[1]];
          *oo += static_cast<float>(acc);
        } else if (st[0] == 1 && st[1] == 1) {
          for (int64_t i = 0; i < n; ++i) oo[i] += aa[i];
        } else {
          for (int64_t i = 0; i < n; ++i) oo[i * st[0]] += aa[i * st[1]];
        }
      },
      /*parallel=*/false);
  return keepdim ? out : out.View(ReducedShape(a.shape(), reduce, false));
}

Tensor Mean(const Tensor& a, const std::vector<int>& axes, bool keepdim) {
  Tensor s = Sum(a, axes, keepdim);
  const int64_t count = s.numel() == 0 ? 0 : a.numel() / s.numel();
  MulScalarInPlace(s, count == 0 ? 0.0f : 1.0f / static_cast<float>(count));
  return s;
}

Tensor SumTo(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  absl::StatusOr<Shape> b = BroadcastShapes(shape, a.shape());
  CHECK(b.ok() && *b == a.shape())
      << "SumTo: shape " << shape << " does not broadcast to " << a.shape();
  const int lead = a.rank() - shape.rank();
  std::vector<int> axes;
  for (int i = 0; i < a.rank(); ++i) {
    if (i < lead || (shape.dims()[i - lead] == 1 && a.dim(i) != 1)) {
      axes.push_back(i);
    }
  }
  return Sum(a, axes, /*keepdim=*/true).View(shape);
}

Tensor Max(const Tensor& a, int axis, bool keepdim) {
  CheckFloat("Max", a);
  axis = a.shape().CanonicalAxis(axis);
  const Tensor t = AxisLast(a, axis);
  const int64_t len = a.dim(axis);
  CHECK_GT(len, 0) << "Max over empty dimension " << axis << " of "
                   << a.shape();
  Shape out_shape(t.shape());
  out_shape[-1] = 1;
  Tensor out = Tensor::Empty(out_shape);
  const int64_t rows = t.numel() / len;
  const float* p = t.data();
  float* o = out.data();
  for (int64_t r = 0; r < rows; ++r) {
    o[r] = *std::max_element(p + r * len, p + (r + 1) * len);
  }
  Tensor back = AxisBack(out, axis);
  return keepdim ? back : back.Squeeze(axis);
}

Tensor Argmax(const Tensor& a, int axis, bool keepdim) {
  CheckFloat("Argmax", a);
  axis = a.shape().CanonicalAxis(axis);
  const Tensor t = AxisLast(a, axis);
  const int64_t len = a.dim(axis);
  CHECK_GT(len, 0) << "Argmax over empty dimension " << axis << " of "
                   << a.shape();
  Shape out_shape = a.shape();
  out_shape[axis] = 1;
  // The permuted layout moves `axis` last; with size 1 there the permuted
  // order of the remaining dims equals their original order.
  Tensor out = Tensor::Empty(out_shape, DType::kInt64);
  const int64_t rows = t.numel() / len;
  const float* p = t.data();
  int64_t* o = out.data<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    o[r] = std::max_element(p + r * len, p + (r + 1) * len) - (p + r * len);
  }
  return keepdim ? out : out.Squeeze(axis);
}

// ---- Linear algebra ---------------------------------------------------------

namespace {

// Describes a [rows, cols] matrix view for Gemm: pointer, whether it is
// stored transposed, and its leading dimension. Copies only when neither
// the view nor its transpose is row-major with unit inner stride.
struct GemmOperand {
  Tensor keep;  // owns a copy when one was needed
  const float* ptr;
  bool trans;
  int64_t ld;
};

GemmOperand AsGemmOperand(const Tensor& m) {
  const int64_t rows = m.dim(0), cols = m.dim(1);
  const int64_t s0 = m.strides()[0], s1 = m.strides()[1];
  if ((s1 == 1 || cols == 1) && s0 >= std::max<int64_t>(cols, 1)) {
    return {Tensor(), m.data(), false, s0};
  }
  if ((s0 == 1 || rows == 1) && s1 >= std::max<int64_t>(rows, 1)) {
    return {Tensor(), m.data(), true, s1};
  }
  Tensor c = m.Contiguous();
  return {c, c.data(), false, std::max<int64_t>(cols, 1)};
}

}  // namespace

Tensor MatMul(const Tensor& a, const Tensor& b) {
  CheckFloat("MatMul", a);
  CheckFloat("MatMul", b);
  CHECK(a.rank() >= 2 && a.rank() <= 3 && b.rank() >= 2 && b.rank() <= 3)
      << "MatMul: expects 2-D or 3-D operands, got " << a.shape() << " and "
      << b.shape();
  CHECK_EQ(a.dim(-1), b.dim(-2))
      << "MatMul: inner dimensions differ: " << a.shape() << " x " << b.shape();
  const int64_t m = a.dim(-2), k = a.dim(-1), n = b.dim(-1);
  if (a.rank() == 2 && b.rank() == 2) {
    Tensor out = Tensor::Empty({m, n});
    const GemmOperand ga = AsGemmOperand(a), gb = AsGemmOperand(b);
    Gemm(ga.trans, gb.trans, m, n, k, 1.0f, ga.ptr, ga.ld, gb.ptr, gb.ld, 0.0f,
         out.data(), n);
    return out;
  }
  const int64_t batch = a.rank() == 3 ? a.dim(0) : b.dim(0);
  if (a.rank() == 3 && b.rank() == 3) {
    CHECK_EQ(a.dim(0), b.dim(0))
        << "MatMul: batch sizes differ: " << a.shape() << " x " << b.shape();
  }
  Tensor out = Tensor::Empty({batch, m, n});
  kernel_internal::ParallelFor(
      batch, omp_get_max_threads(), [&](int64_t begin, int64_t end, int) {
        for (int64_t i = begin; i < end; ++i) {
          const GemmOperand ga =
              AsGemmOperand(a.rank() == 3 ? a.Select(0, i) : a);
          const GemmOperand gb =
              AsGemmOperand(b.rank() == 3 ? b.Select(0, i) : b);
          Gemm(ga.trans, gb.trans, m, n, k, 1.0f, ga.ptr, ga.ld, gb.ptr, gb.ld,
               0.0f, out.data() + i * m * n, n);
        }
      });
  return out;
}

// ---- Softmax ----------------------------------------------------------------

namespace {

Tensor SoftmaxImpl(const char* op, const Tensor& a, int axis, bool log) {
  CheckFloat(op, a);
  axis = a.shape().CanonicalAxis(axis);
  const bool last = axis == a.rank() - 1;
  const Tensor t = last ? a.Contiguous() : AxisLast(a, axis);
  const int64_t len = a.dim(axis);
  const int64_t rows = len == 0 ? 0 : t.numel() / len;
  Tensor out = Tensor::Empty(t.shape());
  const float* p = t.data();
  float* o = out.data();
  kernel_internal::ParallelFor(
      rows, kernel_internal::ThreadsIf(rows * len > (1 << 15)),
      [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          const float* x = p + r * len;
          float* y = o + r * len;
          const float mx = *std::max_element(x, x + len);
          float sum = 0.0f;
          for (int64_t i = 0; i < len; ++i) {
            y[i] = std::exp(x[i] - mx);
            sum += y[i];
          }
          if (log) {
            const float lse = std::log(sum);
            for (int64_t i = 0; i < len; ++i) y[i] = x[i] - mx - lse;
          } else {
            const float inv = 1.0f / sum;
            for (int64_t i = 0; i < len; ++i) y[i] *= inv;
          }
        }
      });
  return last ? out : AxisBack(out, axis);
}

}  // namespace

Tensor Softmax(const Tensor& a, int axis) {
  return SoftmaxImpl("Softmax", a, axis, /*log=*/false);
}

Tensor LogSoftmax(const Tensor& a, int axis) {
  return SoftmaxImpl("LogSoftmax", a, axis, /*log=*/true);
}

// ---- Shape ------------------------------------------------------------------

Tensor Concat(const std::vector<Tensor>& tensors, int axis) {
  CHECK(!tensors.empty()) << "Concat of no tensors";
  for (const Tensor& t : tensors) {
    CHECK(t.dtype() == tensors[0].dtype())
        << "Concat: dtypes differ: " << DTypeName(tensors[0].dtype()) << " and "
        << DTypeName(t.dtype());
  }
  return Concat(tensors, axis, tensors[0].dtype());
}

Tensor Concat(const std::vector<Tensor>& tensors, int axis, DType dtype) {
  CHECK(!tensors.empty()) << "Concat of no tensors";
  const Tensor& first = tensors[0];
  axis = first.shape().CanonicalAxis(axis);
  Shape shape = first.shape();
  int64_t total = 0;
  for (const Tensor& t : tensors) {
    CHECK_EQ(t.rank(), first.rank())
        << "Concat: ranks differ: " << first.shape() << " vs " << t.shape();
    for (int i = 0; i < t.rank(); ++i) {
      CHECK(i == axis || t.dim(i) == first.dim(i))
          << "Concat along axis " << axis << ": shapes " << first.shape()
          << " and " << t.shape() << " differ in dimension " << i;
    }
    total += t.dim(axis);
  }
  shape[axis] = total;
  // Channels-last inputs give a channels-last output: each input's channels
  // go to their place in every position's run of channels.
  MemoryFormat format = MemoryFormat::kContiguous;
  for (const Tensor& t : tensors) {
    if (MemoryFormatOf(t) == MemoryFormat::kChannelsLast) {
      format = MemoryFormat::kChannelsLast;
      break;
    }
  }
  Tensor out = EmptyIn(shape, dtype, format);
  int64_t at = 0;
  for (const Tensor& t : tensors) {
    out.Slice(axis, at, at + t.dim(axis)).CopyFrom(t);
    at += t.dim(axis);
  }
  return out;
}

}  // namespace dive::ops
