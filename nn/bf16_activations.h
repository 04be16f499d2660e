// File: nn/bf16_activations.h
// -----------------------------------------------------------------------------
//
// Which activations the layers store in bf16 under bf16 matmuls
// (MatmulPrecision::kBfloat16, tensor/gemm.h), chosen per thread like the
// precision itself:
//
//   * kWhereExact (the default): only an output whose consumer rounds it to
//     bf16 anyway, a convolution's input (Conv2d's and BatchNormBase's
//     set_feeds_convolution). The step's values and gradients are bit for
//     bit those of float32 activations.
//   * kAutocast: in training, also the activations PyTorch's bf16 autocast
//     stores in bf16 where dive's consumers read bf16 (AutocastStoresBf16):
//       - a convolution's output that goes to its batch norm
//         (Sequential::Fuse, ResNet's residual blocks), or to a max pooling
//         (Sequential::Fuse: AlexNet's, VGG's and NiN's; the pooling's
//         argmax may then break a tie that rounding made);
//       - DenseNet's concatenations, each the next batch norm's input;
//       - GoogLeNet's Inception outputs, which go to convolutions, max
//         pooling (which reads bf16, tensor/pool.h) and the final average.
//     The batch norms compute their statistics in float32 (double sums)
//     from the bf16 values, so they and everything after differ by that
//     rounding (about 2^-9 relative); in return the largest tensors these
//     models keep for backward take half the bytes.
//
// The trainers and bench/throughput choose kAutocast with --precision=bf16;
// evaluation is unaffected (the batch norm is folded into the convolution
// there).
//
// Example:
//
//   const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
//   const nn::ScopedBf16Activations stored(nn::Bf16Activations::kAutocast);
//   loss = Loss(model(x), y);

#ifndef NN_BF16_ACTIVATIONS_H_
#define NN_BF16_ACTIVATIONS_H_

namespace dive::nn {

enum class Bf16Activations { kWhereExact, kAutocast };

// This thread's choice (kWhereExact unless a scope below says otherwise).
Bf16Activations GetBf16Activations();

// Whether a module in training mode `training` stores the activations of
// kAutocast in bf16: under bf16 matmuls, with kAutocast chosen, in training.
bool AutocastStoresBf16(bool training);

class ScopedBf16Activations {
 public:
  explicit ScopedBf16Activations(Bf16Activations choice);
  ~ScopedBf16Activations();
  ScopedBf16Activations(const ScopedBf16Activations&) = delete;
  ScopedBf16Activations& operator=(const ScopedBf16Activations&) = delete;

 private:
  const Bf16Activations previous_;
};

}  // namespace dive::nn

#endif  // NN_BF16_ACTIVATIONS_H_
