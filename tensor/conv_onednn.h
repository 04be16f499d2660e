// File: tensor/conv_onednn.h
// -----------------------------------------------------------------------------
//
// Internal to //tensor (conv.cc): the bf16 forward convolution and its
// weight gradient on oneDNN (Debian's libdnnl 2.6, the library under
// PyTorch's CPU convolutions), for the shapes where it measured faster than
// dive's im2col GEMM.
//
// oneDNN's direct convolution reads its own blocked or channels-last
// layouts, so each call reorders its operands from dive's NCHW / OIHW
// tensors (x float32 or bf16, w float32, dy float32) into them, runs the
// primitive (forward: with the bias, the residual as a "sum" post-op and
// ReLU fused) and reorders the result back (y in the output's dtype, dw in
// float32). Products are of bf16 operands (rounded to nearest even) summed
// in float32, as in dive's bf16 kernels; only the order of the sums differs.
//
// Which shapes: bench/conv_library_benchmark, bf16, on a 2-core AMD EPYC
// Zen 5 (AVX512-BF16), oneDNN with every reorder timed against dive with
// bf16 activations, ms per call (forward, weight gradient):
//
//   layer                              dive          oneDNN
//   ResNet 3x3, 64 ch at 24x24         3.17, 3.28    2.17, 2.67
//   ResNet 3x3 stride 2, 64->128       1.87, 2.09    1.30, 1.77
//   ResNet 3x3, 256 ch at 6x6          2.27, 2.67    1.73, 2.36
//   ResNet 3x3, 512 ch at 3x3          2.87, 3.37    4.50, 4.59  (dive)
//   AlexNet 5x5, 96->256 at 10x10      11.4, 15.3    9.63, 13.2
//   AlexNet 3x3, 256->384 at 4x4       2.86, 3.34    3.74, 3.87  (dive)
//   VGG 3x3, 16->32 at 48x48           4.45, 4.83    3.75, 3.78
//   VGG 3x3, 32->64 at 24x24           3.27, 3.38    2.55, 2.99
//   GoogLeNet 3x3, 64->192 at 24x24    7.42, 7.78    6.42, 7.27
//   DenseNet 3x3, 128->32 at 24x24     4.89, 4.13    2.33, 2.73
//   7x7 and 11x11 on 1 channel         2.34, -       2.89, -     (dive)
//   1x1, 96 ch at 22x22                1.44, 1.49    2.40, 2.60  (dive)
//
// hence OneDnnTakes: a kernel larger than 1x1, at least 16 input channels
// and an output map of at least 32 positions, on a CPU whose bf16 products
// run on AVX512-BF16 or AMX (ActiveIsa() >= kAvx512Bf16, so that
// DIVE_ISA=avx512 or lower turns it off too).

#ifndef TENSOR_CONV_ONEDNN_H_
#define TENSOR_CONV_ONEDNN_H_

#include "tensor/conv.h"
#include "tensor/im2col.h"
#include "tensor/tensor.h"

namespace dive::conv_internal {

// Whether Conv2dForward and Conv2dBackwardWeight run the convolution of `g`
// on oneDNN under bf16 matmuls: by GetConvLibrary() (tensor/conv.h), and
// with kAuto by the rule above.
bool OneDnnTakes(const ConvGeometry& g);

// y = act(conv(x, w) + bias + residual) on oneDNN, bf16 products: x float32
// or bf16 [N, C, H, W], w float32 [OC, C, KH, KW], bias float32 [OC] or
// undefined, y float32 or bf16 [N, OC, OH, OW] (preallocated), all
// contiguous; the epilogue as in Conv2dForward (a bf16 output is the float32
// result rounded once, after the residual and ReLU). False, with y untouched,
// where oneDNN has no primitive for it (logged once per shape).
bool OneDnnConv2dForward(const ConvGeometry& g, const Tensor& x,
                         const Tensor& w, const Tensor& bias,
                         const Tensor& residual, bool relu, Tensor& y);

// dw = the gradient of the convolution's weights given dy and x, on oneDNN,
// bf16 products: dy float32 [N, OC, OH, OW], x float32 or bf16 [N, C, H, W],
// dw float32 [OC, C, KH, KW] (preallocated), all contiguous. False, with dw
// untouched, where oneDNN has no primitive for it (logged once per shape).
bool OneDnnConv2dBackwardWeight(const ConvGeometry& g, const Tensor& dy,
                                const Tensor& x, Tensor& dw);

}  // namespace dive::conv_internal

#endif  // TENSOR_CONV_ONEDNN_H_
