// File: tensor/conv_onednn.h
// -----------------------------------------------------------------------------
//
// Internal to //tensor (conv.cc): the bf16 forward convolution and its
// input and weight gradients on oneDNN (Debian's libdnnl 2.6, the library
// under PyTorch's CPU convolutions), for the shapes where it measured faster
// than dive's im2col GEMM.
//
// oneDNN's direct convolution reads its own blocked or channels-last
// layouts, so each call reorders its operands from dive's NCHW / OIHW
// tensors (x float32 or bf16, w float32, dy float32 or bf16) into them, runs
// the primitive (forward: with the bias, the residual as a "sum" post-op and
// ReLU fused) and reorders the result back (y in the output's dtype, dx and
// dw in float32). Products are of bf16 operands (rounded to nearest even)
// summed in float32, as in dive's bf16 kernels; only the order of the sums
// differs.
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
// hence, for the forward pass and the weight gradient: a kernel larger than
// 1x1, at least 16 input channels and an output map of at least 32
// positions.
//
// The input gradient (bench/conv_library_benchmark bwd_data, the same
// machine; dive there computes a stride-1 gradient as the forward
// convolution of dy with the flipped kernels, all on its own kernels):
//
//   layer                              dive          oneDNN
//   ResNet 3x3, 64 ch at 24x24         3.77          1.95
//   ResNet 3x3 stride 2, 64->128       1.96          1.20
//   ResNet 1x1 stride 2, 64->128       0.455         0.382
//   ResNet 3x3, 256 ch at 6x6          2.51          1.92
//   ResNet 3x3, 512 ch at 3x3          3.80          2.12
//   AlexNet 5x5, 96->256 at 10x10      16.2          10.4
//   AlexNet 3x3, 256->384 at 4x4       3.68          2.80
//   VGG 3x3, 16->32 at 48x48           9.74          4.13
//   GoogLeNet 3x3, 64->192 at 24x24    11.7          5.96
//   GoogLeNet 1x1, 192->64 at 12x12    0.633         0.303
//   NiN 1x1, 96 ch at 22x22            2.75          1.70
//   DenseNet 3x3, 128->32 at 24x24     2.71          2.06
//   DenseNet transition 1x1, 192->96   1.31          1.56  (dive)
//   7x7 on 1 channel (ResNet's stem)   2.61          12.7  (dive)
//
// hence, for the input gradient, any kernel and map with at least 16 input
// channels (the one 1x1 layer where dive wins loses 16%; the others gain
// 1.2-2.4x). All of it on a CPU whose bf16 products run on
// AVX512-BF16 or AMX (ActiveIsa() >= kAvx512Bf16, so that DIVE_ISA=avx512
// or lower turns it off too).

#ifndef TENSOR_CONV_ONEDNN_H_
#define TENSOR_CONV_ONEDNN_H_

#include <vector>

#include "tensor/conv.h"
#include "tensor/im2col.h"
#include "tensor/tensor.h"

namespace dive::conv_internal {

// Whether `pass` of the convolution of `g` runs on oneDNN under bf16
// matmuls: by GetConvLibrary() (tensor/conv.h), and with kAuto by the rules
// above, or, where its activations are channels-last (`channels_last`), by
// those below.
//
// On channels-last activations oneDNN runs a 1x1 convolution as fast as its
// 3x3 ones, and the stems on one channel faster than dive, without the
// reorders that lost it the table above (bench/conv_library_benchmark,
// bf16, 2 threads of the Zen 5, ms per call, dive with bf16 activations
// against oneDNN on NHWC):
//
//   layer                              forward       weight gradient
//   ResNet 1x1 stride 2, 128->256      0.270, 0.136  0.282, 0.162
//   NiN 1x1, 96 ch at 22x22            1.40, 0.736   1.43, 0.924
//   GoogLeNet 1x1, 192->64 at 12x12    0.248, 0.146  0.283, 0.232
//   DenseNet transition 1x1, 192->96   1.24, 0.846   1.41, 1.10
//   NiN 11x11 stride 4, 1->96          3.58, 2.71    2.37, 1.72
//   ResNet 7x7 stride 2, 1->64         1.92, 1.73    2.05, 1.94
//   VGG 3x3, 1->16 at 96x96            2.78, 1.79    2.20, 0.753
//   ResNet 3x3, 512 ch at 3x3          2.93, 4.12    3.34, 6.60   (dive)
//
// hence, there, any kernel with one or at least 16 input channels and an
// output map of at least 32 positions.
bool OneDnnTakes(const ConvGeometry& g, ConvPass pass, bool channels_last);
// Whether the chain of convolutions of `g` and `stages` (Conv2dChainForward,
// inputs numbered) runs on oneDNN, as Conv2dChainUsesOneDnn says.
bool OneDnnTakesChain(const std::vector<ConvGeometry>& g,
                      const std::vector<Conv2dStage>& stages);

// For each value of a chain whose inputs are numbered (x, then each stage's
// output), the last stage that reads it, or -1 for none.
inline std::vector<int> ChainLastReads(const std::vector<Conv2dStage>& stages) {
  std::vector<int> last(stages.size() + 1, -1);
  for (int i = 0; i < static_cast<int>(stages.size()); ++i) {
    last[stages[i].input] = i;
    if (stages[i].residual != Conv2dStage::kNone) last[stages[i].residual] = i;
  }
  return last;
}

// y = act(conv(x, w) + bias + residual) on oneDNN, bf16 products: x float32
// or bf16 [N, C, H, W], w float32 [OC, C, KH, KW], bias float32 [OC] or
// undefined, y float32 or bf16 [N, OC, OH, OW] (preallocated), each
// contiguous or channels-last; the epilogue as in Conv2dForward (a bf16 output
// is the float32 result rounded once, after the residual and ReLU). False, with
// y untouched, where oneDNN has no primitive for it (logged once per shape).
bool OneDnnConv2dForward(const ConvGeometry& g, const Tensor& x,
                         const Tensor& w, const Tensor& bias,
                         const Tensor& residual, bool relu, Tensor& y);

// The convolutions of `g` with the weights, biases, ReLUs, inputs,
// residuals and dtypes of `stages` (inputs numbered and dtypes set, as
// Conv2dChainForward resolves them; the last stage's is y's) on oneDNN, bf16
// products: x float32 or bf16 [N, C, H, W], y (preallocated, the last
// stage's output), all contiguous. x is reordered into the layout of the
// primitives that read it and y out of the last one's; in between, each
// output is stored in its dtype in the layout its primitive writes and read
// as it is (or reordered once where a reader reads another). Each stage runs
// the primitive OneDnnConv2dForward runs for it, so the values are those
// calls', bit for bit. False, with y untouched, where oneDNN has no
// primitive for a stage.
bool OneDnnConv2dChainForward(const std::vector<ConvGeometry>& g,
                              const Tensor& x,
                              const std::vector<Conv2dStage>& stages,
                              Tensor& y);

// dx = the gradient of the convolution's input given dy and w, on oneDNN,
// bf16 products: dy float32 or bf16 [N, OC, OH, OW], w float32 [OC, C, KH, KW],
// dx float32 [N, C, H, W] (preallocated), each contiguous or channels-last.
// False, with dx untouched, where oneDNN has no primitive for it (logged once
// per shape).
bool OneDnnConv2dBackwardInput(const ConvGeometry& g, const Tensor& dy,
                               const Tensor& w, Tensor& dx);

// dw = the gradient of the convolution's weights given dy and x, on oneDNN,
// bf16 products: dy and x float32 or bf16 [N, OC, OH, OW] and [N, C, H, W],
// dw float32 [OC, C, KH, KW] (preallocated), each contiguous or channels-last.
// False, with dw untouched, where oneDNN has no primitive for it (logged once
// per shape).
bool OneDnnConv2dBackwardWeight(const ConvGeometry& g, const Tensor& dy,
                                const Tensor& x, Tensor& dw);

// Both dx and dw as above, from one dy (float32 or bf16) reordered into
// oneDNN's layout once where both primitives read it in the same layout.
// False, with dx and dw untouched, where oneDNN has no primitive for either.
bool OneDnnConv2dBackward(const ConvGeometry& g, const Tensor& dy,
                          const Tensor& x, const Tensor& w, Tensor& dx,
                          Tensor& dw);

}  // namespace dive::conv_internal

#endif  // TENSOR_CONV_ONEDNN_H_
