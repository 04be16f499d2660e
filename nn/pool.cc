#include "nn/pool.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "glog/logging.h"
#include "tensor/conv.h"

namespace dive::nn {
namespace {

// "5" for a square pair, "5x3" otherwise.
std::string Pair(int64_t h, int64_t w) {
  return h == w ? absl::StrCat(h) : absl::StrCat(h, "x", w);
}

Pool2dParams SquareParams(int64_t kernel, int64_t stride, int64_t padding) {
  const int64_t s = stride == 0 ? kernel : stride;
  return Pool2dParams{kernel, kernel, s, s, padding, padding};
}

std::string DescribeParams(const char* name, const Pool2dParams& p) {
  return absl::StrCat(name, "(kernel=", p.kernel_h, "x", p.kernel_w,
                      ", stride=", Pair(p.stride_h, p.stride_w),
                      ", padding=", Pair(p.pad_h, p.pad_w));
}

void CheckParams(const std::string& layer, const Pool2dParams& p) {
  CHECK(p.kernel_h > 0 && p.kernel_w > 0 && p.stride_h > 0 && p.stride_w > 0)
      << layer << ": kernel and stride must be positive";
  CHECK(p.pad_h >= 0 && p.pad_w >= 0 && 2 * p.pad_h <= p.kernel_h &&
        2 * p.pad_w <= p.kernel_w)
      << layer << ": padding must be between 0 and half the kernel";
}

void CheckInput(const std::string& layer, const Pool2dParams& p,
                const autograd::Variable& x) {
  CHECK_EQ(x.rank(), 4) << layer << ": expected input [N, C, H, W], got "
                        << x.shape();
  CHECK(x.dim(2) + 2 * p.pad_h >= p.kernel_h &&
        x.dim(3) + 2 * p.pad_w >= p.kernel_w)
      << layer << ": input " << x.shape()
      << " is smaller than the window (after padding)";
}

// [in, out] matrix whose column i averages PyTorch's adaptive window i of an
// axis of length `in`: [floor(i * in / out), ceil((i + 1) * in / out)).
Tensor AdaptiveWindows(int64_t in, int64_t out) {
  Tensor m = Tensor::Zeros({in, out});
  float* p = m.data();
  for (int64_t i = 0; i < out; ++i) {
    const int64_t start = i * in / out;
    const int64_t end = ((i + 1) * in + out - 1) / out;
    for (int64_t j = start; j < end; ++j) {
      p[j * out + i] = 1.0f / static_cast<float>(end - start);
    }
  }
  return m;
}

}  // namespace

// ---- MaxPool2d ------------------------------------------------------------------

MaxPool2d::MaxPool2d(int64_t kernel_size, int64_t stride, int64_t padding)
    : MaxPool2d(SquareParams(kernel_size, stride, padding)) {}

MaxPool2d::MaxPool2d(const Pool2dParams& params) : params_(params) {
  CheckParams(Describe(), params_);
}

autograd::Variable MaxPool2d::Forward(const autograd::Variable& x) {
  CheckInput(Describe(), params_, x);
  const bool bf16 = feeds_conv_ && x.data().dtype() == DType::kBfloat16;
  return dive::autograd::MaxPool2d(x, params_,
                                   bf16 ? DType::kBfloat16 : DType::kFloat32);
}

bool MaxPool2d::AppendToConvChain(std::vector<ChainedConv>* chain) const {
  if (is_training() || has_forward_hooks()) return false;
  chain->push_back(
      {nullptr, static_cast<int>(chain->size()), Conv2dStage::kNone, this});
  return true;
}

std::string MaxPool2d::Describe() const {
  return DescribeParams("MaxPool2d", params_) + ")";
}

// ---- AvgPool2d ------------------------------------------------------------------

AvgPool2d::AvgPool2d(int64_t kernel_size, int64_t stride, int64_t padding,
                     bool count_include_pad)
    : AvgPool2d(SquareParams(kernel_size, stride, padding),
                count_include_pad) {}

AvgPool2d::AvgPool2d(const Pool2dParams& params, bool count_include_pad)
    : params_(params), count_include_pad_(count_include_pad) {
  CheckParams(Describe(), params_);
}

autograd::Variable AvgPool2d::Forward(const autograd::Variable& x) {
  CheckInput(Describe(), params_, x);
  autograd::Variable y = dive::autograd::AvgPool2d(x, params_);
  if (count_include_pad_ || (params_.pad_h == 0 && params_.pad_w == 0)) {
    return y;
  }
  // y = window sum / window area; the same pooling of a ones image gives
  // (elements inside the image) / area, so the ratio is sum / count.
  const Tensor ones = Tensor::Ones({1, 1, x.dim(2), x.dim(3)});
  const Tensor fraction = AvgPool2dForward(ones, params_);
  return y / autograd::Variable(fraction);
}

std::string AvgPool2d::Describe() const {
  return DescribeParams("AvgPool2d", params_) +
         (count_include_pad_ ? ")" : ", count_include_pad=false)");
}

// ---- AdaptiveAvgPool2d ----------------------------------------------------------

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t output_h, int64_t output_w)
    : output_h_(output_h), output_w_(output_w) {
  CHECK(output_h > 0 && output_w > 0)
      << "AdaptiveAvgPool2d: output size must be positive, got " << output_h
      << "x" << output_w;
}

autograd::Variable AdaptiveAvgPool2d::Forward(const autograd::Variable& x) {
  CHECK(x.rank() == 4 && x.dim(2) > 0 && x.dim(3) > 0)
      << Describe() << ": expected input [N, C, H, W] with H, W > 0, got "
      << x.shape();
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  if (output_h_ == 1 && output_w_ == 1)
    return dive::autograd::GlobalAvgPool2d(x);
  if (h % output_h_ == 0 && w % output_w_ == 0) {
    // Equal, non-overlapping windows: a plain average pooling.
    const int64_t kh = h / output_h_, kw = w / output_w_;
    return dive::autograd::AvgPool2d(x, Pool2dParams{kh, kw, kh, kw});
  }
  // General case: y = A_h^T * x * A_w per image and channel, with A the
  // [in, out] averaging matrices, as two matrix products over the last axis.
  const autograd::Variable a_h(AdaptiveWindows(h, output_h_));
  const autograd::Variable a_w(AdaptiveWindows(w, output_w_));
  autograd::Variable y = MatMul(Reshape(x, {n * c * h, w}), a_w);  // [NCH, OW]
  y = Transpose(Reshape(y, {n * c, h, output_w_}), 1, 2);      // [NC, OW, H]
  y = MatMul(Reshape(y, {n * c * output_w_, h}), a_h);         // [NC OW, OH]
  y = Transpose(Reshape(y, {n * c, output_w_, output_h_}), 1, 2);
  return Reshape(y, {n, c, output_h_, output_w_});
}

std::string AdaptiveAvgPool2d::Describe() const {
  return absl::StrCat("AdaptiveAvgPool2d(", output_h_, "x", output_w_, ")");
}

// ---- GlobalAvgPool2d ------------------------------------------------------------

autograd::Variable GlobalAvgPool2d::Forward(const autograd::Variable& x) {
  CHECK_EQ(x.rank(), 4) << "GlobalAvgPool2d: expected input [N, C, H, W], got "
                        << x.shape();
  return dive::autograd::GlobalAvgPool2d(x);
}

std::string GlobalAvgPool2d::Describe() const { return "GlobalAvgPool2d"; }

}  // namespace dive::nn
