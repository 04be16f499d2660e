#include "tensor/tensor.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "Eigen/Core"
#include "absl/strings/str_cat.h"
#include "tensor/strided.h"

namespace dive {
namespace {

// Whole cache lines, at least one: equal sizes for the caching allocator.
size_t RoundUp(size_t n) {
  return std::max<size_t>(kAllocatorAlignment, (n + kAllocatorAlignment - 1) /
                                                   kAllocatorAlignment *
                                                   kAllocatorAlignment);
}

}  // namespace

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kInt64:
      return "int64";
    case DType::kInt32:
      return "int32";
    case DType::kBfloat16:
      return "bfloat16";
    case DType::kInt8:
      return "int8";
    case DType::kUint8:
      return "uint8";
  }
  return "?";
}

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kInt64:
      return 8;
    case DType::kBfloat16:
      return 2;
    case DType::kInt8:
    case DType::kUint8:
      return 1;
  }
  return 0;
}

Storage::Storage(size_t nbytes, Allocator& allocator)
    : allocator_(allocator),
      data_(allocator.Allocate(RoundUp(nbytes))),
      nbytes_(nbytes) {}

Storage::~Storage() { allocator_.Free(data_, RoundUp(nbytes_)); }

// ---- Creation ---------------------------------------------------------------

Tensor Tensor::Empty(const Shape& shape, DType dtype) {
  for (int64_t d : shape) {
    CHECK_GE(d, 0) << "negative dimension in shape " << shape;
  }
  Tensor t;
  t.storage_ = std::make_shared<Storage>(shape.numel() * DTypeSize(dtype));
  t.shape_ = shape;
  t.strides_ = ContiguousStrides(shape);
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::Zeros(const Shape& shape, DType dtype) {
  Tensor t = Empty(shape, dtype);
  std::memset(t.storage_->data(), 0, t.numel() * DTypeSize(dtype));
  return t;
}

Tensor Tensor::Ones(const Shape& shape) { return Full(shape, 1.0f); }

Tensor Tensor::Full(const Shape& shape, float value) {
  Tensor t = Empty(shape);
  t.Fill(value);
  return t;
}

Tensor Tensor::Scalar(float value) { return Full(Shape{}, value); }

Tensor Tensor::FromVector(const std::vector<float>& values,
                          const Shape& shape) {
  CHECK_EQ(static_cast<int64_t>(values.size()), shape.numel())
      << "FromVector: " << values.size() << " values for shape " << shape;
  Tensor t = Empty(shape);
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

Tensor Tensor::FromInt64Vector(const std::vector<int64_t>& values,
                               const Shape& shape) {
  CHECK_EQ(static_cast<int64_t>(values.size()), shape.numel())
      << "FromVector: " << values.size() << " values for shape " << shape;
  Tensor t = Empty(shape, DType::kInt64);
  std::copy(values.begin(), values.end(), t.data<int64_t>());
  return t;
}

Tensor Tensor::Arange(int64_t n) {
  Tensor t = Empty({n});
  float* p = t.data();
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(i);
  return t;
}

// ---- Properties -------------------------------------------------------------

bool Tensor::OwnsStorageAlone() const {
  return storage_ != nullptr && storage_.use_count() == 1 && offset_ == 0 &&
         is_contiguous() &&
         static_cast<size_t>(numel()) * DTypeSize(dtype_) == storage_->nbytes();
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int i = rank() - 1; i >= 0; --i) {
    if (shape_.dims()[i] != 1 && strides_[i] != expected) return false;
    expected *= shape_.dims()[i];
  }
  return true;
}

int64_t Tensor::ElementOffset(std::initializer_list<int64_t> index) const {
  CHECK_EQ(static_cast<int>(index.size()), rank())
      << "index of rank " << index.size() << " for tensor of shape " << shape_;
  int64_t off = 0;
  int i = 0;
  for (int64_t v : index) {
    CHECK(v >= 0 && v < shape_.dims()[i])
        << "index " << v << " out of range for dimension " << i << " of shape "
        << shape_;
    off += v * strides_[i];
    ++i;
  }
  return off;
}

float Tensor::item() const {
  CHECK_EQ(numel(), 1) << "item() needs a one-element tensor, got shape "
                       << shape_;
  switch (dtype_) {
    case DType::kFloat32:
      return *data<float>();
    case DType::kInt64:
      return static_cast<float>(*data<int64_t>());
    case DType::kInt32:
      return static_cast<float>(*data<int32_t>());
    case DType::kBfloat16:
      return static_cast<float>(*data<bfloat16>());
    case DType::kInt8:
      return static_cast<float>(*data<int8_t>());
    case DType::kUint8:
      return static_cast<float>(*data<uint8_t>());
  }
  return 0;
}

std::vector<float> Tensor::ToVector() const {
  Tensor c = To(DType::kFloat32);
  return std::vector<float>(c.data<float>(), c.data<float>() + c.numel());
}

std::vector<int64_t> Tensor::ToInt64Vector() const {
  Tensor c = To(DType::kInt64);
  return std::vector<int64_t>(c.data<int64_t>(), c.data<int64_t>() + c.numel());
}

// ---- Views ------------------------------------------------------------------

Tensor Tensor::WithView(Shape shape, Dims strides, int64_t offset) const {
  Tensor t = *this;
  t.shape_ = std::move(shape);
  t.strides_ = std::move(strides);
  t.offset_ = offset;
  return t;
}

Tensor Tensor::View(const Shape& shape) const {
  absl::StatusOr<Shape> s = InferShape(shape, numel());
  CHECK(s.ok()) << "View of tensor " << shape_ << ": " << s.status().message();
  CHECK(is_contiguous()) << "View of non-contiguous tensor " << shape_ << " as "
                         << shape << "; use Reshape()";
  return WithView(*s, ContiguousStrides(*s), offset_);
}

Tensor Tensor::Reshape(const Shape& shape) const {
  return is_contiguous() ? View(shape) : Contiguous().View(shape);
}

Tensor Tensor::Flatten(int start, int end) const {
  if (rank() == 0) return View({1});
  start = shape_.CanonicalAxis(start);
  end = shape_.CanonicalAxis(end);
  CHECK_LE(start, end) << "Flatten(" << start << ", " << end << ") of "
                       << shape_;
  Shape s;
  int64_t merged = 1;
  for (int i = 0; i < rank(); ++i) {
    if (i < start || i > end) {
      s.push_back(shape_.dims()[i]);
    } else {
      merged *= shape_.dims()[i];
      if (i == end) s.push_back(merged);
    }
  }
  return Reshape(s);
}

Tensor Tensor::Transpose(int a, int b) const {
  a = shape_.CanonicalAxis(a);
  b = shape_.CanonicalAxis(b);
  Shape s = shape_;
  Dims st = strides_;
  std::swap(s[a], s[b]);
  std::swap(st[a], st[b]);
  return WithView(s, st, offset_);
}

Tensor Tensor::Permute(const std::vector<int>& order) const {
  CHECK_EQ(static_cast<int>(order.size()), rank())
      << "Permute order of size " << order.size() << " for shape " << shape_;
  Shape s;
  Dims st;
  std::vector<bool> seen(rank(), false);
  for (int axis : order) {
    const int a = shape_.CanonicalAxis(axis);
    CHECK(!seen[a]) << "Permute: axis " << a << " repeated for shape "
                    << shape_;
    seen[a] = true;
    s.push_back(shape_.dims()[a]);
    st.push_back(strides_[a]);
  }
  return WithView(s, st, offset_);
}

Tensor Tensor::Slice(int axis, int64_t start, int64_t end, int64_t step) const {
  axis = shape_.CanonicalAxis(axis);
  const int64_t n = shape_.dims()[axis];
  CHECK_GT(step, 0) << "Slice step must be positive";
  CHECK(start >= 0 && start <= n)
      << "Slice start " << start << " out of range for dimension " << axis
      << " of shape " << shape_;
  end = std::min(end, n);
  CHECK_GE(end, start) << "Slice end " << end << " before start " << start;
  Shape s = shape_;
  Dims st = strides_;
  s[axis] = (end - start + step - 1) / step;
  st[axis] = strides_[axis] * step;
  return WithView(s, st, offset_ + start * strides_[axis]);
}

Tensor Tensor::Select(int axis, int64_t index) const {
  axis = shape_.CanonicalAxis(axis);
  CHECK(index >= 0 && index < shape_.dims()[axis])
      << "Select index " << index << " out of range for dimension " << axis
      << " of shape " << shape_;
  Shape s;
  Dims st;
  for (int i = 0; i < rank(); ++i) {
    if (i == axis) continue;
    s.push_back(shape_.dims()[i]);
    st.push_back(strides_[i]);
  }
  return WithView(s, st, offset_ + index * strides_[axis]);
}

Tensor Tensor::Unsqueeze(int axis) const {
  if (axis < 0) axis += rank() + 1;
  CHECK(axis >= 0 && axis <= rank())
      << "Unsqueeze axis " << axis << " out of range for shape " << shape_;
  Dims s = shape_.dims(), st = strides_;
  s.insert(s.begin() + axis, 1);
  st.insert(st.begin() + axis,
            axis < rank() ? strides_[axis] * shape_[axis] : 1);
  return WithView(Shape(s), st, offset_);
}

Tensor Tensor::Squeeze(int axis) const {
  axis = shape_.CanonicalAxis(axis);
  CHECK_EQ(shape_.dims()[axis], 1)
      << "Squeeze of dimension " << axis << " of shape " << shape_;
  return Select(axis, 0);
}

Tensor Tensor::Expand(const Shape& shape) const {
  CHECK_GE(shape.rank(), rank())
      << "cannot expand shape " << shape_ << " to " << shape;
  const int lead = shape.rank() - rank();
  Dims st(shape.rank(), 0);
  for (int i = 0; i < rank(); ++i) {
    const int64_t d = shape_.dims()[i];
    CHECK(d == shape.dims()[lead + i] || d == 1)
        << "cannot expand shape " << shape_ << " to " << shape;
    st[lead + i] = d == 1 ? 0 : strides_[i];
  }
  return WithView(shape, st, offset_);
}

// ---- Copies -----------------------------------------------------------------

Tensor Tensor::Contiguous() const { return is_contiguous() ? *this : Clone(); }

Tensor Tensor::Clone() const {
  Tensor out = Empty(shape_, dtype_);
  out.CopyFrom(*this);
  return out;
}

Tensor Tensor::Frozen() const {
  Tensor out = Clone();
  out.storage_->frozen_forms_ = std::make_unique<FrozenForms>();
  return out;
}

namespace {

template <typename Dst, typename Src>
void CopyCast(const Tensor& dst, const Tensor& src) {
  Dst* d = dst.data<Dst>();
  const Src* s = src.data<Src>();
  ForEachStrided2(
      dst.shape(), dst.strides(), src.strides(),
      [&](int64_t n, int64_t od, int64_t sd, int64_t os, int64_t ss) {
        if (sd == 1 && ss == 1) {  // runs of a slice: a loop that vectorizes
          Dst* __restrict dr = d + od;
          const Src* __restrict sr = s + os;
          for (int64_t i = 0; i < n; ++i) dr[i] = static_cast<Dst>(sr[i]);
          return;
        }
        for (int64_t i = 0; i < n; ++i) {
          d[od + i * sd] = static_cast<Dst>(s[os + i * ss]);
        }
      });
}

template <typename Dst>
void CopyFromAny(const Tensor& dst, const Tensor& src) {
  switch (src.dtype()) {
    case DType::kFloat32:
      return CopyCast<Dst, float>(dst, src);
    case DType::kInt64:
      return CopyCast<Dst, int64_t>(dst, src);
    case DType::kInt32:
      return CopyCast<Dst, int32_t>(dst, src);
    case DType::kBfloat16:
      return CopyCast<Dst, bfloat16>(dst, src);
    case DType::kInt8:
      return CopyCast<Dst, int8_t>(dst, src);
    case DType::kUint8:
      return CopyCast<Dst, uint8_t>(dst, src);
  }
}

// Contiguous float32 <-> bf16, the conversions of mixed precision: the
// vectorized loops of tensor/bf16.h, in parallel over large tensors.
// Returns false for any other pair of layouts or dtypes.
bool ConvertContiguous(const Tensor& dst, const Tensor& src) {
  if (!dst.is_contiguous() || !src.is_contiguous()) return false;
  const int64_t n = dst.numel();
  const bool to_bf16 =
      dst.dtype() == DType::kBfloat16 && src.dtype() == DType::kFloat32;
  const bool to_float =
      dst.dtype() == DType::kFloat32 && src.dtype() == DType::kBfloat16;
  if (!to_bf16 && !to_float) return false;
  // Chunks of 16 Ki elements: whole cache lines on both sides.
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for if (chunks > 8 && !omp_in_parallel())
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kChunk, len = std::min(kChunk, n - begin);
    if (to_bf16) {
      FloatToBf16(src.data<float>() + begin, dst.data<bfloat16>() + begin, len);
    } else {
      Bf16ToFloat(src.data<bfloat16>() + begin, dst.data<float>() + begin, len);
    }
  }
  return true;
}

}  // namespace

void Tensor::CopyFrom(const Tensor& src) {
  const Tensor s = src.Expand(shape_);
  if (dtype_ == s.dtype_ && is_contiguous() && s.is_contiguous()) {
    const size_t elem = DTypeSize(dtype_);
    std::memcpy(static_cast<char*>(storage_->data()) + offset_ * elem,
                static_cast<const char*>(s.storage_->data()) + s.offset_ * elem,
                numel() * elem);
    return;
  }
  if (ConvertContiguous(*this, s)) return;
  switch (dtype_) {
    case DType::kFloat32:
      return CopyFromAny<float>(*this, s);
    case DType::kInt64:
      return CopyFromAny<int64_t>(*this, s);
    case DType::kInt32:
      return CopyFromAny<int32_t>(*this, s);
    case DType::kBfloat16:
      return CopyFromAny<bfloat16>(*this, s);
    case DType::kInt8:
      return CopyFromAny<int8_t>(*this, s);
    case DType::kUint8:
      return CopyFromAny<uint8_t>(*this, s);
  }
}

Tensor Tensor::To(DType dtype) const {
  Tensor out = Empty(shape_, dtype);
  out.CopyFrom(*this);
  return out;
}

void Tensor::Fill(float value) {
  CHECK(dtype_ == DType::kFloat32)
      << "Fill of a " << DTypeName(dtype_) << " tensor";
  float* d = data<float>();
  ForEachStrided1(shape_, strides_, [&](int64_t n, int64_t o, int64_t s) {
    for (int64_t i = 0; i < n; ++i) d[o + i * s] = value;
  });
}

// ---- Printing ---------------------------------------------------------------

std::string Tensor::ToString() const {
  std::ostringstream os;
  os << "Tensor(shape=" << shape_ << ", dtype=" << DTypeName(dtype_);
  if (!defined()) return "Tensor(undefined)";
  const std::vector<float> v = ToVector();
  const int64_t last = rank() == 0 ? 1 : shape_[-1];
  constexpr int64_t kMaxShown = 64;
  os << ", values=[";
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    if (i == kMaxShown) {
      os << " ... (" << v.size() - kMaxShown << " more)";
      break;
    }
    if (i > 0) os << (i % last == 0 ? "]\n  [" : ", ");
    os << v[i];
  }
  os << "])";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  return os << t.ToString();
}

// ---- Threads ----------------------------------------------------------------

void SetNumThreads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  Eigen::setNbThreads(n);
}

int GetNumThreads() { return omp_get_max_threads(); }

}  // namespace dive
