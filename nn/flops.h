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
// `LayerCost` goes further for the per-layer profiler's roofline
// (train/layer_profiler.h): each layer's forward and backward FLOPs and the
// bytes each must move, whatever the layer. Its counts are a model, stated
// with the struct; they are what a layer must do, not what dive's kernels
// happen to do (a blocked GEMM rereads its operands from cache).
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

// LayerCost
//
// One call's arithmetic and compulsory memory traffic: every tensor the
// pass reads or writes counted once, at `element_bytes` per element (the
// activations' dtype), n the input's elements, m the output's, P the
// layer's parameters (weight and bias):
//
//   Conv2d, Linear  forward F = 2 x multiply-adds; backward F for the
//                   weight's gradient plus F for the input's when it is
//                   wanted (the bias's n-sized sums are left out, as in F).
//                   Bytes: forward n + m + P; backward dy (m) and x (n)
//                   read, dW and db (P) written, and with the input's
//                   gradient W read and dx (n) written.
//   BatchNorm1d/2d  forward 5 per element (a sum and a sum of squares, then
//                   x * a + b with a, b folded per channel); backward 3 (the
//                   sums of dy and dy x-hat) plus 4 for dx. Bytes as Conv2d.
//   ReLU            1 per element each way; Sigmoid, Tanh 3 (the
//                   exponential counted as one); Softmax 4. Backward reads y
//                   and dy and writes dx.
//   MaxPool2d       forward kh x kw - 1 comparisons per output, backward
//                   none (a scatter); it keeps the argmax (an int32, 4
//                   bytes per output), written forward and read backward.
//   AvgPool2d       kh x kw per output each way; AdaptiveAvgPool2d,
//                   GlobalAvgPool2d one per input element each way.
//   Dropout         1 per element each way (times the mask, counted as n
//                   elements written forward and read backward).
//   Flatten, Identity: views, nothing. Containers and other modules:
//                   nothing of their own (their layers count themselves).
//
// Pooling, dropout and activations backward write dx only when the input
// wants a gradient; a layer whose input does not (the first) has no
// backward beyond its parameters'.
struct LayerCost {
  int64_t forward_flops = 0;
  int64_t backward_flops = 0;
  int64_t forward_bytes = 0;
  int64_t backward_bytes = 0;
};

LayerCost LayerCostOf(const Module& module, const Shape& input_shape,
                      const Shape& output_shape, bool input_needs_grad,
                      int64_t element_bytes = 4);

// Runs one `Module::DryRun` of `model` on a zero image of `image_shape`
// ([C, H, W]; batch 1) and returns 2 x the multiply-adds of its Conv2d
// and Linear layers. InvalidArgument when `image_shape` is not [C, H, W]
// with positive sides.
absl::StatusOr<int64_t> ForwardFlopsPerExample(Module& model,
                                               const Shape& image_shape);

}  // namespace dive::nn

#endif  // NN_FLOPS_H_
