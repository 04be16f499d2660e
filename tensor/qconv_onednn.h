// File: tensor/qconv_onednn.h
// -----------------------------------------------------------------------------
//
// Internal to //tensor:qgemm (qconv.cc): QConv2d on oneDNN's int8
// convolution (Debian's libdnnl 2.6, brgconv avx512_core_vnni) for the
// shapes where it measured faster than dive's VNNI kernels, with dive's
// layout and dive's requantization, byte for byte.
//
// Exactness. oneDNN requantizes in float32 (the int32 sums converted to
// float, times a float scale), which differs from dive's double product
// (tensor/qgemm.h) in the last bit near a rounding boundary, and its
// zero-point handling converts the sums to float as well (inexact beyond
// 2^24). So oneDNN is only asked for the bare int32 sums of the uint8 bytes
// times the int8 weights: no zero point, no bias, no scales, no post-ops, an
// int32 destination, which its kernel stores straight from the VPDPBUSD
// accumulators (exact: qconv_onednn_test checks sums of 1.5e8). The padding is
// done here, with x's zero point, so that the sums are those of dive's im2col;
// the zero-point correction, bias and requantization are then dive's own
// (qgemm_internal::ChannelData: offset = bias - zp * sum of the weights,
// scale in double, half-to-even rounding), in one AVX-512 pass that also
// transposes oneDNN's NHWC sums into dive's NCHW output, 16 channels by 16
// pixels at a time. Every output type (uint8, int32, float) is the same
// bytes as dive's kernels give.
//
// Per call: x (NCHW uint8) is reordered into a padded NHWC buffer (the
// border filled with the zero point), then the batch runs in chunks of
// images whose int32 sums fit in about 512 KiB (L2), each chunk's sums
// requantized while they are in cache.
//
// Caching. The primitives, the x reorder and the weights in oneDNN's layout
// depend on the weights and the input's size (n, h, w, stride, padding);
// they are kept in a cache that the QPackedWeights own (OneDnnQConvCache,
// made by PackQConv2dWeights on the avx512_vnni path with a copy of the OIHW
// weights), one plan per input size. Weights are constant once packed, so
// they are reordered once per plan and die with the packed weights (a model
// run at several batch sizes keeps a plan, and a copy of the reordered
// weights, for each); no global cache keyed by pointers, which a freed and
// reallocated layer could
// alias.
//
// Which shapes: bench/int8_benchmark BM_QConv2d/<layer>/avx512_vnni, 2
// threads, on the 2-core AMD EPYC Zen 5 (AVX512-VNNI), uint8 in and out,
// bias, per-channel scales, ReLU, DIVE_QCONV_LIBRARY=dive against =onednn,
// the best of 3 alternating runs of 0.2 s, the background job paused, ms
// per call (this path: every reorder, the padding and the requantization
// included; k = c * kh * kw, the products per output):
//
//   layer                                   k      dive     oneDNN
//   AlexNet 5x5, 96->256 at 10x10, n 64     2400   9.25     5.31
//   VGG 3x3, 16->32 at 48x48, n 64          144    2.04     5.00  (dive)
//   ResNet 3x3, 64 ch at 24x24, n 32        576    1.38     1.39  (tie)
//   ResNet 3x3, 128 ch at 12x12, n 32       1152   1.35     1.11
//   ResNet 3x3, 512 ch at 3x3, n 32         4608   2.46     1.14
//   GoogLeNet 1x1, 192->64 at 12x12, n 32   192    0.183    0.291 (dive)
//
// oneDNN's convolution alone is 1.9-3x faster than dive's kernels (in its
// blocked layouts with its own float requantization: 4.48, 1.34, 0.97,
// 0.89, 1.01, 0.091 ms, BM_QConv2dOneDnn/<layer>/blocked, measured for
// issue 37 on the same machine), but the exact requantization is a pass
// over the int32 sums (4 bytes per output) whose cost is per output,
// whatever k: about 1 ms of VGG's 5 (timed alone, 2 threads), where dive's
// kernels requantize in registers; and VGG's 295 KiB of sums per image make
// chunks of one image, each a oneDNN call. Hence (kAuto): a kernel larger
// than 1x1 with k >= 1024 (ResNet at 64 channels, k = 576, a tie, stays on
// dive's; 1x1 kernels too: no im2col there, and oneDNN loses its reorders).
// Only on the avx512_vnni path (weights packed for it: a CPU with
// AVX512-VNNI and DIVE_ISA not lowered below it).

#ifndef TENSOR_QCONV_ONEDNN_H_
#define TENSOR_QCONV_ONEDNN_H_

#include <cstdint>
#include <memory>

#include "tensor/qconv.h"
#include "tensor/qgemm.h"
#include "tensor/qgemm_driver.h"

namespace dive::qconv_internal {

// The OIHW weights of one convolution and its oneDNN plans (qconv_onednn.cc).
struct OneDnnQConvCache;

// A cache for w [oc, c, kh, kw] (copied).
std::shared_ptr<OneDnnQConvCache> MakeOneDnnQConvCache(int64_t oc, int64_t c,
                                                       int64_t kh, int64_t kw,
                                                       const int8_t* w);

// Whether QConv2d of these weights runs on oneDNN: weights packed for
// avx512_vnni (with a cache), then by GetQConvLibrary() and, with kAuto, by
// the rule above.
bool OneDnnQConvTakes(const QPackedWeights& weights);

// y [n, oc, oh, ow] as QConv2d's, its arguments checked, `channels` made by
// MakeChannelData with x_zero_point. False, with y untouched, where oneDNN
// has no primitive for the shape (logged once per shape).
bool OneDnnQConv2d(int64_t n, int64_t h, int64_t w, const uint8_t* x,
                   int32_t x_zero_point, const QPackedWeights& weights,
                   const QConv2dParams& p, int64_t oh, int64_t ow,
                   const QRequantization& rq,
                   const qgemm_internal::ChannelData& channels, void* y);

}  // namespace dive::qconv_internal

#endif  // TENSOR_QCONV_ONEDNN_H_
