// File: tensor/memory_format.h
// -----------------------------------------------------------------------------
//
// Channels-last, PyTorch's torch.channels_last: a 4-D tensor whose shape
// stays [N, C, H, W] (the API's and the checkpoints' convention) but whose
// elements lie in memory in the order N, H, W, C, the strides
// [H*W*C, 1, W*C, C]. It is the layout oneDNN's convolutions read and
// write without a reorder, and a batch norm reads it as the rows of an
// [N*H*W, C] matrix.
//
// The kernels that honour it keep it: a oneDNN convolution (tensor/conv.h)
// writes a channels-last output from a channels-last input, batch norm
// (tensor/batch_norm.h) and the elementwise ops (tensor/ops.h) write their
// result in the layout of their input. Every other kernel reads any view,
// so it reads a channels-last tensor correctly, through a contiguous copy,
// and writes a contiguous result.
//
// Example:
//
//   Tensor x = dive::Normal({32, 64, 24, 24}, 0, 1);     // contiguous
//   Tensor xl = ToMemoryFormat(x, MemoryFormat::kChannelsLast);
//   IsChannelsLast(xl);                                  // true
//   xl.at<float>({0, 5, 1, 2}) == x.at<float>({0, 5, 1, 2});

#ifndef TENSOR_MEMORY_FORMAT_H_
#define TENSOR_MEMORY_FORMAT_H_

#include "tensor/shape.h"
#include "tensor/tensor.h"

namespace dive {

enum class MemoryFormat { kContiguous, kChannelsLast };

// Whether `t` is 4-D with the strides of a dense channels-last tensor,
// ignoring size-1 dimensions as is_contiguous() does (so a tensor of one
// channel, or of 1x1 maps, is both).
bool IsChannelsLast(const Tensor& t);

// kChannelsLast where `t` is channels-last and not contiguous, else
// kContiguous.
MemoryFormat MemoryFormatOf(const Tensor& t);

// An uninitialized tensor of `shape` in `format` (kChannelsLast needs a 4-D
// shape; CHECK-fails naming it otherwise).
Tensor EmptyIn(const Shape& shape, DType dtype, MemoryFormat format);

// `t` itself when it is already in `format`, else a copy in it.
Tensor ToMemoryFormat(const Tensor& t, MemoryFormat format);

// `t` itself when it is contiguous or channels-last (the two dense layouts
// that the kernels above read as they are), else a contiguous copy.
Tensor DenseOrContiguous(const Tensor& t);

}  // namespace dive

#endif  // TENSOR_MEMORY_FORMAT_H_
