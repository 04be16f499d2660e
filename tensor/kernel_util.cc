#include "tensor/kernel_util.h"

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>

#include "glog/logging.h"

namespace dive::kernel_internal {

void CheckFloat4D(const char* op, const char* name, const Tensor& t,
                  bool bf16_ok) {
  CHECK(t.defined()) << op << ": " << name << " is undefined";
  CHECK(t.dtype() == DType::kFloat32 ||
        (bf16_ok && t.dtype() == DType::kBfloat16))
      << op << ": " << name << " must be float32"
      << (bf16_ok ? " or bfloat16" : "") << ", got " << DTypeName(t.dtype())
      << " tensor of shape " << t.shape();
  CHECK_EQ(t.rank(), 4) << op << ": " << name
                        << " must be 4-D (NCHW), got shape " << t.shape();
}

void CheckShape4D(const char* op, const char* name, const Shape& s) {
  CHECK_EQ(s.rank(), 4) << op << ": " << name
                        << " must be 4-D (NCHW), got shape " << s;
}

std::string Shapes(const char* name_a, const Shape& a, const char* name_b,
                   const Shape& b) {
  std::ostringstream os;
  os << " (" << name_a << " " << a << ", " << name_b << " " << b << ")";
  return os.str();
}

int64_t OutSize(const char* op, const char* dim, int64_t in, int64_t kernel,
                int64_t stride, int64_t pad, const std::string& shapes) {
  CHECK_GT(kernel, 0) << op << ": kernel " << dim << " must be positive, got "
                      << kernel << shapes;
  CHECK_GT(stride, 0) << op << ": stride " << dim << " must be positive, got "
                      << stride << shapes;
  CHECK_GE(pad, 0) << op << ": padding " << dim << " must be >= 0, got " << pad
                   << shapes;
  CHECK_GE(in + 2 * pad, kernel)
      << op << ": input " << dim << " " << in << " with padding " << pad
      << " is smaller than the kernel " << dim << " " << kernel
      << " (output size would be <= 0)" << shapes;
  return (in + 2 * pad - kernel) / stride + 1;
}

Window2d MakeWindow2d(const char* op, Window2d window,
                      const std::string& shapes) {
  window.oh = OutSize(op, "height", window.h, window.kh, window.sh, window.ph,
                      shapes);
  window.ow = OutSize(op, "width", window.w, window.kw, window.sw, window.pw,
                      shapes);
  return window;
}

void ValidRange(int64_t in, int64_t offset, int64_t stride, int64_t out,
                int64_t* lo, int64_t* hi) {
  int64_t l = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  int64_t h = in - 1 - offset < 0 ? 0 : (in - 1 - offset) / stride + 1;
  l = std::min(l, out);
  h = std::min(h, out);
  *lo = l;
  *hi = std::max(h, l);
}

}  // namespace dive::kernel_internal
