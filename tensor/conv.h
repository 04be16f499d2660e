// File: tensor/conv.h
// -----------------------------------------------------------------------------
//
// Forward and backward kernels of 2-D convolution on float32 NCHW tensors,
// without autograd (`autograd/functions.h` wraps them; pooling is in
// `tensor/pool.h`). Inputs may be any view; they are made contiguous first,
// but where oneDNN runs the pass a channels-last one is read as it lies.
// Results are new contiguous tensors, or channels-last as
// GetConvMemoryFormat() says where oneDNN writes them. Shape errors CHECK-fail
// with a message that names the op and the shapes. The input x, in the forward
// pass and the weight gradient, may also be bfloat16 (an activation stored at
// half the bytes; read exactly, as float), and the forward pass may write a
// bfloat16 output (Conv2dEpilogue::dtype): the same sums, rounded once at the
// end.
//
// Convolution is a GEMM of the weights [OC, C*KH*KW] with the im2col of the
// input, which is never stored: `dive::GemmRhs` writes it block by block into
// the GEMM's packed panels. The weights are packed once per call; images run
// in parallel over the batch (OpenMP), or, where output maps are small, side
// by side in one GEMM so that its 64-column tiles are full. A 1x1
// convolution with stride 1 and no padding is a plain GEMM on the input. The
// input gradient with stride 1 is the forward convolution of dy with the
// kernels flipped (else a GEMM into columns and col2im); the weight gradient
// is `dive::GemmNT` of dy with the im2col. It is a cross-correlation, like
// PyTorch's `conv2d` (no dilation, no groups).
//
// Example (LeNet's first layer and its gradients):
//
//   Tensor x = dive::Normal({256, 1, 28, 28}, 0, 1);
//   Tensor w = dive::Normal({6, 1, 5, 5}, 0, 0.1f);
//   Tensor b = Tensor::Zeros({6});
//   Conv2dParams p;
//   p.pad_h = p.pad_w = 2;
//   Tensor y = Conv2dForward(x, w, b, p);                 // [256, 6, 28, 28]
//   Tensor dy = Tensor::Ones(y.shape());
//   Tensor dx = Conv2dBackwardInput(dy, w, x.shape(), p);  // [256, 1, 28, 28]
//   Tensor dw = Conv2dBackwardWeight(dy, x, w.shape(), p); // [6, 1, 5, 5]
//   Tensor db = Conv2dBackwardBias(dy);                    // [6]

#ifndef TENSOR_CONV_H_
#define TENSOR_CONV_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "tensor/memory_format.h"
#include "tensor/pool.h"
#include "tensor/shape.h"
#include "tensor/tensor.h"

namespace dive {

// Conv2dParams
//
// Stride and zero padding of a 2-D convolution (the kernel size comes from
// the weight's shape). Padding is applied on both sides of each dimension.
struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
};

// ConvOutSize()
//
// The output size along one spatial dimension of a convolution or pooling
// window sweep: (in + 2 * pad - kernel) / stride + 1, rounded down (PyTorch's
// default, ceil_mode=False). CHECK-fails with a message naming the sizes when
// the padded input is smaller than the kernel, or when kernel or stride is
// not positive or pad is negative.
int64_t ConvOutSize(int64_t in, int64_t kernel, int64_t stride, int64_t pad);

// Conv2dForward()
//
//   y[n, o, i, j] = bias[o] + sum over c, a, b of
//       w[o, c, a, b] * x[n, c, i*stride_h - pad_h + a, j*stride_w - pad_w + b]
//
// with x read as zero outside the image. x is [N, C, H, W], w is
// [OC, C, KH, KW], bias is [OC] or an undefined `Tensor()` for none; the
// result is [N, OC, OH, OW] with OH = ConvOutSize(H, KH, stride_h, pad_h).
Tensor Conv2dForward(const Tensor& x, const Tensor& w, const Tensor& bias,
                     const Conv2dParams& p);

// ConvLibrary
//
// Which kernels run a convolution's forward pass, input gradient and weight
// gradient under bf16 matmuls (MatmulPrecision::kBfloat16, tensor/gemm.h) on
// a CPU with AVX512-BF16 or AMX: kAuto (the default), oneDNN's blocked
// direct convolution on the shapes where it measured faster, dive's im2col
// GEMM elsewhere (the tables are in tensor/conv_onednn.h); kDive, dive's
// everywhere; kOneDnn, oneDNN on every shape (for tests and measurements).
// Both sum bf16 products in float32; only the order of the sums differs.
// Float32 convolutions and the bias gradient always run dive's.
// Process-wide; the environment variable DIVE_CONV_LIBRARY=auto|dive|onednn
// sets it at startup.
enum class ConvLibrary { kAuto, kDive, kOneDnn };
ConvLibrary GetConvLibrary();
void SetConvLibrary(ConvLibrary library);
// The three passes of a convolution: Conv2dForward, Conv2dBackwardInput and
// Conv2dBackwardWeight.
enum class ConvPass { kForward, kInputGradient, kWeightGradient };
// The memory format of the activations oneDNN writes, forward outputs and
// input gradients: with kContiguous (the default) each is in the layout of
// what it is computed from (x, dy), so channels-last in gives channels-last
// out; with kChannelsLast (tensor/memory_format.h) each is channels-last,
// so that from the first convolution oneDNN runs the activations between
// convolutions, batch norms, ReLUs and residual adds stay channels-last,
// without a reorder around each convolution. dive's kernels read any
// layout and always write contiguous results. Process-wide; the
// environment variable DIVE_CONV_MEMORY_FORMAT=contiguous|channels_last sets
// it at startup.
MemoryFormat GetConvMemoryFormat();
void SetConvMemoryFormat(MemoryFormat format);
// Sets it for a scope (a training run, a benchmark), then restores it.
class ScopedConvMemoryFormat {
 public:
  explicit ScopedConvMemoryFormat(MemoryFormat format)
      : saved_(GetConvMemoryFormat()) {
    SetConvMemoryFormat(format);
  }
  ~ScopedConvMemoryFormat() { SetConvMemoryFormat(saved_); }
  ScopedConvMemoryFormat(const ScopedConvMemoryFormat&) = delete;
  ScopedConvMemoryFormat& operator=(const ScopedConvMemoryFormat&) = delete;

 private:
  const MemoryFormat saved_;
};

// Whether `pass` of the convolution of x [N, C, H, W] and w [OC, C, KH, KW]
// with `p` runs on oneDNN, in this thread's matmul precision, for
// activations (x, or dy for the input gradient) in `activations` (oneDNN
// takes more shapes on channels-last ones, tensor/conv_onednn.h).
bool Conv2dUsesOneDnn(const Shape& x, const Shape& w, const Conv2dParams& p,
                      ConvPass pass = ConvPass::kForward,
                      MemoryFormat activations = MemoryFormat::kContiguous);

// Conv2dEpilogue
//
// What a convolution may do to its output before writing it, in the same
// pass (the GEMM's epilogue, tensor/gemm.h), instead of a separate op and
// pass over memory for each: a residual added, then ReLU:
//
//   y = relu(conv(x, w) + bias + residual)
//
// This is ResNet's `relu(bn2(conv2(y)) + shortcut)` once the batch norm is
// folded into the convolution (nn/conv2d.h), and every conv + ReLU pair.
struct Conv2dEpilogue {
  // Of the output's shape, float32 or bfloat16 (read exactly), or undefined
  // for none.
  Tensor residual;
  bool relu = false;
  // The output's dtype: float32, or bfloat16 (each element of the float32
  // result rounded to nearest even, after the bias, residual and ReLU).
  DType dtype = DType::kFloat32;
};

// Conv2dForward() with an epilogue. CHECK-fails naming the shapes when the
// residual's shape is not the output's.
Tensor Conv2dForward(const Tensor& x, const Tensor& w, const Tensor& bias,
                     const Conv2dParams& p, const Conv2dEpilogue& epilogue);

// Conv2dChainForward()
//
// Convolutions that feed each other, as Conv2dForward calls with their
// epilogues compute them, for inference (nothing is kept for a backward
// pass). The values are numbered: v_0 = x and v_i = y_(i-1), the output of
// stage i - 1. Stage i convolves one of the values before it (by default the
// one just before) and may add another, of its output's shape, before its
// ReLU:
//
//   y_i = relu_i(conv(v_(input_i), w_i) + bias_i + v_(residual_i)),
//
// and the chain's result is the last stage's output. By default each stage
// reads the one before (a NiN block); a ResNet block reads its input twice
// and adds its shortcut: {conv1 (input 0), conv3 (input 0), conv2 (input 1,
// residual 2)}, or without conv3 {conv1, conv2 (residual 0)}.
//
// A stage may instead be a max pooling of its input (`max_pool`, with
// MaxPool2dForward's window, stride and padding; it adds no residual and
// reads no weights): VGG's and NiN's blocks with the pooling between them
// run as one chain, the pooling on oneDNN in the convolutions' layout. Its
// maxima are exact in any dtype, so storing them in bf16 changes nothing
// for a convolution under bf16 matmuls that reads them (NaN aside, which
// oneDNN's pooling need not propagate).
//
// Each y_i before the last is stored in its stage's dtype, by default
// bfloat16 under bf16 matmuls (what a convolution rounds its input to
// anyway), else float32; the last in `dtype`. Where Conv2dChainUsesOneDnn,
// oneDNN runs the chain with the intermediate outputs in its own blocked
// layout: x is reordered into it and the result out of it once, instead of
// around every convolution, and the values are those of the Conv2dForward calls
// under ConvLibrary::kOneDnn, bit for bit. Elsewhere it is those calls in this
// thread's library. Each intermediate output is freed after the last stage that
// reads it. Shape errors, and a stage reading a value that is not before it,
// CHECK-fail naming the stage.
//
// Example (a NiN block, in evaluation):
//
//   std::vector<Conv2dStage> block = {{w1, b1, {4, 4, 0, 0}, true},
//                                     {w2, b2, {}, true},
//                                     {w3, b3, {}, true}};
//   Tensor y = Conv2dChainForward(x, block, DType::kFloat32);
struct Conv2dStage {
  Tensor weight;  // float32 [OC, C, KH, KW]
  Tensor bias;    // float32 [OC], or undefined for none
  Conv2dParams params;
  bool relu = false;
  // The value convolved; kPrevious: the one just before the stage.
  int input = kPrevious;
  // The value added before the ReLU, of the output's shape; kNone: none.
  int residual = kNone;
  // What the output is stored in, float32 or bfloat16 (a value added as a
  // residual is read exactly); unset: the default above. Not read for the
  // last stage.
  std::optional<DType> dtype;
  // Set: a max pooling of the input instead of a convolution (weight, bias,
  // params and relu are not read).
  std::optional<Pool2dParams> max_pool;

  static constexpr int kPrevious = -1;
  static constexpr int kNone = -1;
};
Tensor Conv2dChainForward(const Tensor& x,
                          const std::vector<Conv2dStage>& stages, DType dtype);
// Whether oneDNN runs Conv2dChainForward(x, stages) in this thread's matmul
// precision: under bf16 matmuls on a CPU with AVX512-BF16 or AMX, for two or
// more stages; with ConvLibrary::kAuto, when every stage that reads another
// stage's output has at least 16 input channels and every output map at
// least 32 positions (bench/kernel_benchmark BM_Conv2dChain, one core of a
// Zen 5, ms per call, chain against one by one: NiN's first block 9.4
// against 11.2, its second 22.1 against 24.4, its third, on 4x4 maps, 8.6
// against 7.3).
bool Conv2dChainUsesOneDnn(const Shape& x,
                           const std::vector<Conv2dStage>& stages);

// Conv2dBackwardInput()
//
// The gradient with respect to the input x (of shape `x_shape`) given dy, the
// gradient of the output: a transposed convolution of dy with w.
Tensor Conv2dBackwardInput(const Tensor& dy, const Tensor& w,
                           const Shape& x_shape, const Conv2dParams& p);

// Conv2dBackwardWeight()
//
// The gradient with respect to the weight (of shape `w_shape`) given dy and
// the forward input x: the sum over the batch of dy_n * im2col(x_n)^T.
Tensor Conv2dBackwardWeight(const Tensor& dy, const Tensor& x,
                            const Shape& w_shape, const Conv2dParams& p);

// Conv2dBackwardBias()
//
// The gradient with respect to the bias: dy [N, OC, OH, OW] summed over N,
// OH and OW, giving [OC].
Tensor Conv2dBackwardBias(const Tensor& dy);

// Conv2dBackward()
//
// The gradients of one convolution with the epilogue of Conv2dForward,
// y = relu(conv(x, w) + bias + residual), given dy, the gradient of y: those
// `want` asks for, each the value the functions above give for the
// gradient at the sum before the ReLU,
//
//   g = dy where relu_y > 0, else 0   (ops::ReluBackward; g = dy without one)
//   input  = Conv2dBackwardInput(g, w, x_shape, p)    needs w
//   weight = Conv2dBackwardWeight(g, x, w_shape, p)   needs x
//   bias   = Conv2dBackwardBias(g)
//   sum    = g (float32): what the residual receives
//
// in fewer passes over dy. The mask, the bias's sums and, where only oneDNN
// reads g (bf16 products, tensor/conv_onednn.h), its rounding to bf16 are
// one pass; and where oneDNN computes both the input and the weight
// gradient, g is reordered into its layout once for both. relu_y is the
// forward's output (float32 or bf16) when it applied ReLU, else undefined;
// x and w may be undefined when the gradient that needs them is not asked
// for. CHECK-fails naming the shapes on a mismatch, as the functions above.
struct Conv2dGradRequest {
  bool input = false, weight = false, bias = false, sum = false;
};
struct Conv2dGrads {
  Tensor input, weight, bias, sum;  // undefined where not asked for
};
Conv2dGrads Conv2dBackward(const Tensor& dy, const Tensor& relu_y,
                           const Tensor& x, const Shape& x_shape,
                           const Tensor& w, const Shape& w_shape,
                           const Conv2dParams& p,
                           const Conv2dGradRequest& want);

}  // namespace dive

#endif  // TENSOR_CONV_H_
