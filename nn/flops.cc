#include "nn/flops.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "autograd/variable.h"
#include "nn/conv2d.h"
#include "nn/linear.h"

namespace dive::nn {
namespace {

// Multiply-adds per output element of `weight`'s layer: all of its weights
// that feed one output (conv: C_in / groups x kh x kw; linear: in_features).
int64_t MacsPerOutput(const autograd::Variable& weight) {
  return weight.shape().numel() / weight.shape()[0];
}

}  // namespace

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
