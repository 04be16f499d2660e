#include "nn/flops.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "autograd/variable.h"
#include "nn/activation.h"
#include "nn/batch_norm.h"
#include "nn/conv2d.h"
#include "nn/dropout.h"
#include "nn/linear.h"
#include "nn/pool.h"

namespace dive::nn {
namespace {

// Multiply-adds per output element of `weight`'s layer: all of its weights
// that feed one output (conv: C_in / groups x kh x kw; linear: in_features).
int64_t MacsPerOutput(const autograd::Variable& weight) {
  return weight.shape().numel() / weight.shape()[0];
}

int64_t Numel(const autograd::Variable& v) {
  return v.defined() ? v.numel() : 0;
}

}  // namespace

LayerCost LayerCostOf(const Module& module, const Shape& input_shape,
                      const Shape& output_shape, bool input_needs_grad,
                      int64_t element_bytes) {
  const int64_t n = input_shape.numel(), m = output_shape.numel();
  const int64_t dx = input_needs_grad ? n : 0;  // the input's gradient
  LayerCost c;
  // Layers with parameters: x, y, W, b forward; dy, x, (W, dx), dW, db
  // backward.
  auto with_params = [&](int64_t weight, int64_t bias, int64_t forward,
                         int64_t backward_params, int64_t backward_input) {
    c.forward_flops = forward;
    c.backward_flops =
        backward_params + (input_needs_grad ? backward_input : 0);
    c.forward_bytes = element_bytes * (n + m + weight + bias);
    c.backward_bytes = element_bytes * (m + n + weight + bias +
                                        (input_needs_grad ? weight + n : 0));
  };
  // Layers without: x, y (+ extra) forward; dy, saved, dx backward.
  auto elementwise = [&](int64_t forward, int64_t backward, int64_t saved_bytes,
                         int64_t forward_extra_bytes) {
    c.forward_flops = forward;
    c.backward_flops = input_needs_grad ? backward : 0;
    c.forward_bytes = element_bytes * (n + m) + forward_extra_bytes;
    c.backward_bytes =
        input_needs_grad ? element_bytes * (m + dx) + saved_bytes : 0;
  };
  if (const auto* conv = dynamic_cast<const Conv2d*>(&module)) {
    const int64_t f = LayerForwardFlops(module, output_shape);
    with_params(Numel(conv->weight()), Numel(conv->bias()), f, f, f);
  } else if (const auto* fc = dynamic_cast<const Linear*>(&module)) {
    const int64_t f = LayerForwardFlops(module, output_shape);
    with_params(Numel(fc->weight()), Numel(fc->bias()), f, f, f);
  } else if (const auto* bn = dynamic_cast<const BatchNormBase*>(&module)) {
    with_params(Numel(bn->weight()), Numel(bn->bias()), 5 * n, 3 * n, 4 * n);
  } else if (dynamic_cast<const ReLU*>(&module) != nullptr) {
    elementwise(n, n, element_bytes * m, 0);
  } else if (dynamic_cast<const Sigmoid*>(&module) != nullptr ||
             dynamic_cast<const Tanh*>(&module) != nullptr) {
    elementwise(3 * n, 3 * n, element_bytes * m, 0);
  } else if (dynamic_cast<const Softmax*>(&module) != nullptr) {
    elementwise(4 * n, 4 * n, element_bytes * m, 0);
  } else if (const auto* pool = dynamic_cast<const MaxPool2d*>(&module)) {
    const Pool2dParams& p = pool->params();
    elementwise(m * (p.kernel_h * p.kernel_w - 1), 0, 4 * m, 4 * m);
  } else if (const auto* pool = dynamic_cast<const AvgPool2d*>(&module)) {
    const Pool2dParams& p = pool->params();
    elementwise(m * p.kernel_h * p.kernel_w, m * p.kernel_h * p.kernel_w, 0, 0);
  } else if (dynamic_cast<const AdaptiveAvgPool2d*>(&module) != nullptr ||
             dynamic_cast<const GlobalAvgPool2d*>(&module) != nullptr) {
    elementwise(n, n, 0, 0);
  } else if (const auto* dropout = dynamic_cast<const Dropout*>(&module);
             dropout != nullptr && dropout->p() > 0) {
    elementwise(n, n, element_bytes * n, element_bytes * n);
  }
  return c;
}

int64_t LayerForwardFlops(const Module& module, const Shape& output_shape) {
  if (const auto* conv = dynamic_cast<const Conv2d*>(&module)) {
    return 2 * output_shape.numel() * MacsPerOutput(conv->weight());
  }
  if (const auto* fc = dynamic_cast<const Linear*>(&module)) {
    return 2 * output_shape.numel() * MacsPerOutput(fc->weight());
  }
  return 0;
}

absl::StatusOr<int64_t> ForwardFlopsPerExample(Module& model,
                                               const Shape& image_shape) {
  if (image_shape.rank() != 3 || image_shape.numel() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ForwardFlopsPerExample: the image shape must be [C, H, "
                     "W] with positive sides, not ",
                     image_shape.ToString()));
  }
  int64_t flops = 0;
  autograd::HookHandle counter = model.RegisterForwardHooksOnAll(
      nullptr, [&flops](Module& module, const autograd::Variable&,
                        const autograd::Variable& output) {
        flops += LayerForwardFlops(module, output.shape());
        return autograd::Variable();
      });
  model.DryRun({1, image_shape[0], image_shape[1], image_shape[2]});
  counter.Remove();
  return flops;
}

}  // namespace dive::nn
