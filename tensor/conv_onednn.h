// File: tensor/conv_onednn.h
// -----------------------------------------------------------------------------
//
// Internal to //tensor (conv.cc): the bf16 forward convolution on oneDNN
// (Debian's libdnnl 2.6, the library under PyTorch's CPU convolutions), for
// the shapes where it measured faster than dive's im2col GEMM.
//
// oneDNN's direct convolution reads its own blocked layouts (nChw16c and
// blocked weights), so each call reorders x (float32 or bf16 NCHW) and the
// weights (float32 OIHW) into them, runs the primitive with the bias, the
// residual (a "sum" post-op) and ReLU fused, and reorders the result back to
// dive's NCHW in the output's dtype. Products are of bf16 operands (rounded
// to nearest even) summed in float32, as in dive's bf16 kernels; only the
// order of the sums differs.
//
// Which shapes: bench/conv_library_benchmark, forward, bf16, on a 2-core AMD
// EPYC Zen 5 (AVX512-BF16), oneDNN with every reorder timed against dive
// with bf16 activations (ms per call):
//
//   layer                              dive    oneDNN
//   ResNet 3x3, 64 ch at 24x24         3.17    2.17
//   ResNet 3x3 stride 2, 64->128       1.87    1.30
//   ResNet 3x3, 256 ch at 6x6          2.27    1.73
//   ResNet 3x3, 512 ch at 3x3          2.87    4.50    (dive)
//   AlexNet 5x5, 96->256 at 10x10      11.4    9.63
//   AlexNet 3x3, 256->384 at 4x4       2.86    3.74    (dive)
//   VGG 3x3, 16->32 at 48x48           4.45    3.75
//   VGG 3x3, 32->64 at 24x24           3.27    2.55
//   GoogLeNet 3x3, 64->192 at 24x24    7.42    6.42
//   DenseNet 3x3, 128->32 at 24x24     4.89    2.33
//   7x7 and 11x11 on 1 channel         2.34    2.89    (dive)
//   1x1, 96 ch at 22x22                1.44    2.40    (dive)
//
// hence OneDnnTakesForward: a kernel larger than 1x1, at least 16 input
// channels and an output map of at least 32 positions, on a CPU whose bf16
// products run on AVX512-BF16 or AMX (ActiveIsa() >= kAvx512Bf16, so that
// DIVE_ISA=avx512 or lower turns it off too).

#ifndef TENSOR_CONV_ONEDNN_H_
#define TENSOR_CONV_ONEDNN_H_

#include "tensor/conv.h"
#include "tensor/im2col.h"
#include "tensor/tensor.h"

namespace dive::conv_internal {

// Whether Conv2dForward runs the convolution of `g` on oneDNN under bf16
// matmuls: by GetConvLibrary() (tensor/conv.h), and with kAuto by the rule
// above.
bool OneDnnTakesForward(const ConvGeometry& g);

// y = act(conv(x, w) + bias + residual) on oneDNN, bf16 products: x float32
// or bf16 [N, C, H, W], w float32 [OC, C, KH, KW], bias float32 [OC] or
// undefined, y float32 or bf16 [N, OC, OH, OW] (preallocated), all
// contiguous; the epilogue as in Conv2dForward (a bf16 output is the float32
// result rounded once, after the residual and ReLU). False, with y untouched,
// where oneDNN has no primitive for it (logged once per shape).
bool OneDnnConv2dForward(const ConvGeometry& g, const Tensor& x,
                         const Tensor& w, const Tensor& bias,
                         const Tensor& residual, bool relu, Tensor& y);

}  // namespace dive::conv_internal

#endif  // TENSOR_CONV_ONEDNN_H_
