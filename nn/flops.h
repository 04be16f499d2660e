// File: nn/flops.h
// -----------------------------------------------------------------------------
//
// The arithmetic of a model's forward pass, counted from the shapes one pass
// sees: each convolution's and fully connected layer's multiply-adds, times
// 2. That is the FLOP count the book quotes and the one dive's benchmarks
// put beside the machine's peak (bench/throughput's `flops_per_example`,
// `fraction_of_peak`); pooling, BatchNorm and activations are a few
// operations per element and are left out, as is usual. A training step is
// about 3 forward passes (the forward, and the input and weight gradients).
//
// Example:
//
//   absl::StatusOr<int64_t> flops = ForwardFlopsPerExample(lenet, {1, 28, 28});
//   // 2 * (conv1 117,600 + conv2 240,000 + linears 48,000 + 10,080 + 840)
//   // multiply-adds: 833,040 FLOPs per image

#ifndef NN_FLOPS_H_
#define NN_FLOPS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "nn/module.h"
#include "tensor/shape.h"

namespace dive::nn {

// LayerForwardFlops()
//
// 2 x the multiply-adds of `module`'s own computation for one call that
// produced an output of `output_shape`: a Conv2d's or a Linear's; 0 for
// every other module, containers included (their layers count themselves).
int64_t LayerForwardFlops(const Module& module, const Shape& output_shape);

// Runs one `Module::DryRun` of `model` on a zero image of `image_shape`
// ([C, H, W]; batch 1) and returns 2 x the multiply-adds of its Conv2d
// and Linear layers. InvalidArgument when `image_shape` is not [C, H, W]
// with positive sides.
absl::StatusOr<int64_t> ForwardFlopsPerExample(Module& model,
                                               const Shape& image_shape);

}  // namespace dive::nn

#endif  // NN_FLOPS_H_
