// File: tensor/tensor.h
// -----------------------------------------------------------------------------
//
// `Tensor` is an n-dimensional array: a reference-counted, 64-byte aligned
// `Storage` plus a view of it (shape, strides in elements, offset). Copying a
// `Tensor` copies the handle, not the data; views (`View`, `Transpose`,
// `Permute`, `Slice`, `Select`, `Expand`, ...) share storage with their source
// and never copy. `Contiguous()` and `Clone()` copy.
//
// float32 is the compute type; int64 and int32 tensors hold labels and
// indices, bfloat16 ones (tensor/bf16.h) activations at half the bytes, and
// int8 and uint8 ones the weights and activations of int8 inference
// (quant/); all of them support creation, views, copies, conversion (`To`:
// a C++ cast, so float to int8 truncates and must be in range) and element
// access. Kernels that do arithmetic CHECK-fail naming the dtype they got
// unless they say they take bf16.
//
// Example:
//
//   dive::Tensor x = dive::Tensor::FromVector({1, 2, 3, 4, 5, 6}, {2, 3});
//   dive::Tensor xt = x.Transpose(0, 1);      // [3, 2], shares storage
//   xt.is_contiguous();                        // false
//   dive::Tensor y = xt.Contiguous();         // copies into row-major order
//   float v = x.at<float>({1, 2});             // 6
//   const float* p = y.data<float>();          // contiguous: row-major
//
// Kernels (tensor/ops.h, gemm.h, conv.h) read a tensor's raw data, through
// its strides (tensor/strided.h) or after `Contiguous()`.

#ifndef TENSOR_TENSOR_H_
#define TENSOR_TENSOR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

#include "glog/logging.h"
#include "tensor/allocator.h"
#include "tensor/bf16.h"
#include "tensor/shape.h"

namespace dive {

enum class DType { kFloat32, kInt64, kInt32, kBfloat16, kInt8, kUint8 };

const char* DTypeName(DType dtype);
size_t DTypeSize(DType dtype);

template <typename T>
constexpr DType DTypeOf();
template <>
constexpr DType DTypeOf<float>() {
  return DType::kFloat32;
}
template <>
constexpr DType DTypeOf<int64_t>() {
  return DType::kInt64;
}
template <>
constexpr DType DTypeOf<int32_t>() {
  return DType::kInt32;
}
template <>
constexpr DType DTypeOf<bfloat16>() {
  return DType::kBfloat16;
}
template <>
constexpr DType DTypeOf<int8_t>() {
  return DType::kInt8;
}
template <>
constexpr DType DTypeOf<uint8_t>() {
  return DType::kUint8;
}

// FrozenForms
//
// What kernels derive from the elements of a frozen tensor (Tensor::Frozen):
// the GEMM's packed panels of a weight matrix, oneDNN's blocked copy of a
// convolution's weights. Each is made at its first use and kept with the
// tensor's storage for every later call, since the elements never change.
// Keys name the form and all it depends on (the view's shape and offset,
// the kernel path, the precision). Thread-safe.
class FrozenForms {
 public:
  // The form stored under `key`, made by `make` at the first call (under a
  // lock, so two threads never make the same form twice).
  template <typename T>
  const T& Get(const std::string& key,
               const std::function<std::unique_ptr<T>()>& make) {
    const std::lock_guard<std::mutex> lock(mu_);
    std::shared_ptr<const void>& form = forms_[key];
    if (form == nullptr) form = std::shared_ptr<const T>(make());
    return *static_cast<const T*>(form.get());
  }
  // How many forms have been made (for tests).
  size_t size() const {
    const std::lock_guard<std::mutex> lock(mu_);
    return forms_.size();
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const void>> forms_;
};

// A block of 64-byte aligned memory from an `Allocator` (tensor/allocator.h),
// by default the caching one, so that a training loop that allocates the same
// tensor sizes every step stops calling the system allocator after its first
// step. The block goes back to the allocator it came from.
class Storage {
 public:
  explicit Storage(size_t nbytes, Allocator& allocator = DefaultAllocator());
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  // Non-null for the storage of a frozen tensor (Tensor::Frozen).
  FrozenForms* frozen_forms() const { return frozen_forms_.get(); }

 private:
  friend class Tensor;
  Allocator& allocator_;
  void* data_;
  size_t nbytes_;
  std::unique_ptr<FrozenForms> frozen_forms_;
};

class Tensor {
 public:
  // An undefined tensor (no storage); `defined()` is false.
  Tensor() = default;

  // Uninitialized memory of the given shape.
  static Tensor Empty(const Shape& shape, DType dtype = DType::kFloat32);
  static Tensor Zeros(const Shape& shape, DType dtype = DType::kFloat32);
  static Tensor Ones(const Shape& shape);
  static Tensor Full(const Shape& shape, float value);
  // A rank-0 tensor holding `value`.
  static Tensor Scalar(float value);
  // Copies `values` into a new tensor; CHECK-fails when the sizes differ.
  static Tensor FromVector(const std::vector<float>& values,
                           const Shape& shape);
  static Tensor FromInt64Vector(const std::vector<int64_t>& values,
                                const Shape& shape);
  // 0, 1, ..., n-1 as float32.
  static Tensor Arange(int64_t n);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  const Dims& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  DType dtype() const { return dtype_; }
  bool is_contiguous() const;
  // True when both tensors view the same storage.
  bool SharesStorage(const Tensor& other) const {
    return storage_ == other.storage_;
  }
  // True when this handle is the only one on its storage and views all of
  // it, contiguously: no other tensor can see the elements, so they may be
  // taken over instead of copied (as PyTorch's AccumulateGrad steals a
  // gradient nobody else references).
  bool OwnsStorageAlone() const;

  // Pointer to the first element of the view. CHECK-fails on a dtype mismatch.
  template <typename T>
  T* data() const {
    CHECK(dtype_ == DTypeOf<T>()) << "tensor of dtype " << DTypeName(dtype_)
                                  << " accessed as " << DTypeName(DTypeOf<T>());
    return static_cast<T*>(storage_->data()) + offset_;
  }
  float* data() const { return data<float>(); }
  // The view's first element as raw bytes (DTypeSize(dtype()) each), for
  // code that moves elements without reading them: files, communication.
  void* raw_data() const {
    return static_cast<char*>(storage_->data()) + offset_ * DTypeSize(dtype_);
  }

  // Element at a full index (negative indices not allowed); CHECK-fails with
  // the shape when out of range.
  template <typename T>
  T at(std::initializer_list<int64_t> index) const {
    return data<T>()[ElementOffset(index)];
  }
  // The single value of a one-element tensor.
  float item() const;
  // A copy of the elements in row-major order.
  std::vector<float> ToVector() const;
  std::vector<int64_t> ToInt64Vector() const;

  // ---- Views (share storage) ----------------------------------------------
  // Same elements with a new shape (one dimension may be -1). Requires a
  // contiguous tensor; CHECK-fails naming both shapes otherwise.
  Tensor View(const Shape& shape) const;
  // `View` when contiguous, otherwise a contiguous copy with the new shape.
  Tensor Reshape(const Shape& shape) const;
  // Flattens dimensions [start, end] into one.
  Tensor Flatten(int start = 0, int end = -1) const;
  Tensor Transpose(int a, int b) const;
  Tensor Permute(const std::vector<int>& order) const;
  // Elements start, start+step, ... < end along `axis` (end is clamped).
  Tensor Slice(int axis, int64_t start, int64_t end, int64_t step = 1) const;
  // Removes `axis` by fixing it at `index`.
  Tensor Select(int axis, int64_t index) const;
  Tensor Unsqueeze(int axis) const;
  Tensor Squeeze(int axis) const;
  // Broadcasts size-1 dimensions (and new leading ones) to `shape` with
  // stride 0. CHECK-fails naming both shapes when not broadcastable.
  Tensor Expand(const Shape& shape) const;

  // ---- Copies --------------------------------------------------------------
  // `*this` when already contiguous, otherwise a row-major copy.
  Tensor Contiguous() const;
  // Always a new contiguous copy.
  Tensor Clone() const;
  // Converts between dtypes (a copy, even for the same dtype).
  Tensor To(DType dtype) const;
  // Copies `src` (broadcast to this shape) into this view, element by element.
  void CopyFrom(const Tensor& src);
  void Fill(float value);

  // ---- Frozen tensors ------------------------------------------------------
  // A contiguous copy whose elements its owner promises never to change,
  // such as nn::Module::Freeze's snapshot of a layer's weights for
  // inference: the kernels that read it keep what they derive from it (the
  // GEMM's packed panels, oneDNN's blocked weights; FrozenForms) for every
  // later call, instead of making it at each call. Nothing enforces the
  // promise; write to a frozen tensor and the kernels go on with the old
  // forms. Only its owner should hold it.
  Tensor Frozen() const;
  // The derived forms of this tensor's storage; null unless frozen.
  FrozenForms* frozen_forms() const {
    return storage_ == nullptr ? nullptr : storage_->frozen_forms();
  }

  // Multi-line printout with shape and dtype, summarizing large tensors.
  std::string ToString() const;

 private:
  int64_t ElementOffset(std::initializer_list<int64_t> index) const;
  Tensor WithView(Shape shape, Dims strides, int64_t offset) const;

  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Dims strides_;
  int64_t offset_ = 0;
  DType dtype_ = DType::kFloat32;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Sets the number of threads used by tensor kernels (OpenMP and Eigen).
// `n <= 0` restores the default (all cores).
void SetNumThreads(int n);
int GetNumThreads();

}  // namespace dive

#endif  // TENSOR_TENSOR_H_
