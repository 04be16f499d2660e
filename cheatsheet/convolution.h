// File: cheatsheet/convolution.h
// -----------------------------------------------------------------------------
//
// Cheat sheet sections 6.1-6.5 (convolution), computed once and shared by
// `convolution_test` and the `convolution` binary. The operations are
// written from their definitions (loops and a matrix product, like the
// book's corr2d, corr2d_multi_in, corr2d_multi_in_out(_1x1) and pool2d) and
// compared with dive's Conv2d, MaxPool2d and AvgPool2d modules.
//
//   6.1  Y[i, j] = sum_a,b X[i + a, j + b] K[a, b]   (cross-correlation)
//   6.2  output size floor((n - k + p + s) / s) with p the total padding of
//        a dimension (the document's floor((n - m + 2p) / s) + 1 with p per
//        side): narrow n - k + 1, wide n + k - 1, same n.
//   6.3  multiple input channels: sum over channels of corr2d; multiple
//        output channels: one such sum per output channel.
//   6.4  a 1x1 convolution is a matrix product over the channels.
//   6.5  max and average pooling, with padding and stride.
//
// Example:
//
//   EdgeDetection e = LearnEdgeKernel();
//   // e.learned is close to [1, -1].

#ifndef CHEATSHEET_CONVOLUTION_H_
#define CHEATSHEET_CONVOLUTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace dive::cheatsheet {

// ---- The definitions ------------------------------------------------------------

// Corr2d(): x [H, W], k [KH, KW] -> [H - KH + 1, W - KW + 1].
Tensor Corr2d(const Tensor& x, const Tensor& k);
// Corr2dMultiIn(): x [C, H, W], k [C, KH, KW] -> [OH, OW].
Tensor Corr2dMultiIn(const Tensor& x, const Tensor& k);
// Corr2dMultiInOut(): x [C, H, W], k [O, C, KH, KW] -> [O, OH, OW].
Tensor Corr2dMultiInOut(const Tensor& x, const Tensor& k);
// Corr2dMultiInOut1x1(): x [C, H, W], k [O, C, 1, 1] -> [O, H, W] as
// (k as [O, C]) x (x as [C, H * W]).
Tensor Corr2dMultiInOut1x1(const Tensor& x, const Tensor& k);
// Pool2dByDefinition(): x [H, W], a ph x pw window, stride 1, no padding;
// `max` or else the average.
Tensor Pool2dByDefinition(const Tensor& x, int64_t ph, int64_t pw, bool max);
// OutSizeFormula(): floor((n - k + p + s) / s), p the total padding.
int64_t OutSizeFormula(int64_t n, int64_t k, int64_t p, int64_t s);

// ---- The book's examples, against dive ------------------------------------------

struct DefinitionVsDive {
  std::string what;
  Tensor by_definition, by_dive;
};

// 6.1: the book's X = 0..8 (3 x 3), K = [[0, 1], [2, 3]] and a random
// 6 x 7 input with a 3 x 2 kernel, each by Corr2d and by nn::Conv2d.
std::vector<DefinitionVsDive> Corr2dExamples(uint64_t seed = 7);

struct EdgeDetection {
  // X: 6 x 8 ones with columns 2..5 zero; K = [1, -1]; Y = corr2d(X, K)
  // (1 at white-to-black edges, -1 at black-to-white); corr2d(X^T, K) is 0.
  Tensor x, k, y, y_of_transpose;
  // Learning K from X and Y as the book does: a Conv2d(1, 1, (1, 2)) without
  // bias, loss sum((Y_hat - Y)^2), weight -= lr * grad.
  float lr = 0;
  std::vector<float> losses;  // after each iteration's update's forward
  std::vector<float> learned;  // the final 1 x 2 kernel
};

// LearnEdgeKernel()
//
// The book uses 10 iterations at lr 0.03; 20 are run here so that the
// kernel ends within 0.05 of [1, -1] for any initial weights the layer
// draws (from `seed`).
EdgeDetection LearnEdgeKernel(int iterations = 20, uint64_t seed = 0);

struct OutSizeRow {
  int64_t n, k, p, s;  // p: total padding (p / 2 on each side)
  int64_t formula;
  int64_t conv;              // nn::Conv2d's output side
  int64_t max_pool = -1;     // nn::MaxPool2d's, or -1 where pooling cannot
  int64_t avg_pool = -1;     // take that padding (more than half the window)
  std::string note;
};

// 6.2: the book's examples, narrow/wide/same, and layers of the zoo.
std::vector<OutSizeRow> OutputSizeTable();

// 6.2: the book's 8 x 8 input, kernel 3 x 5, padding (0, 1), stride (3, 4):
// 2 x 2 by the formula and by Conv2d ({formula_h, formula_w, conv_h,
// conv_w}).
std::vector<int64_t> NonSquareOutputSize();

// 6.3 and 6.4: multiple input channels (the book's X [2, 3, 3], K [2, 2, 2]),
// multiple output channels (K, K + 1, K + 2), each by definition and by
// nn::Conv2d; then random 1x1 kernels by Corr2dMultiInOut and by the matrix
// product (`by_definition` of the third and fourth entries), each against
// nn::Conv2d.
std::vector<DefinitionVsDive> ChannelExamples(uint64_t seed = 8);

// 6.5: pooling X = 0..8 (3 x 3) with a 2 x 2 window by definition and by
// dive, then X = 0..15 (4 x 4) through the book's padded and strided
// MaxPool2d's (by_definition holds the book's printed result).
std::vector<DefinitionVsDive> PoolingExamples();

}  // namespace dive::cheatsheet

#endif  // CHEATSHEET_CONVOLUTION_H_
