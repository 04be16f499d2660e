// File: tools/onnx_export.h
// -----------------------------------------------------------------------------
//
// Export of a module as an ONNX model (opset 13), built with the ONNX
// project's own protobuf classes (Debian's libonnx-dev) and accepted by its
// checker before anything is written.
//
// The module is traced (autograd/trace.h): one forward pass in evaluation
// mode on an input of `input_shape`, whose ops become the graph's nodes.
// Parameters and buffers become initializers under their state-dict names
// ("features.0.weight"); any other tensor an op reads that no traced op made
// becomes a constant. The batch dimension is dynamic ("N"), so the traced
// ops must keep it: a reshape that merges the batch into another dimension
// is an error, not a graph that only works at the traced batch size.
//
// dive op       -> ONNX
//   Conv2d         Conv                 Linear      Gemm (transB = 1)
//   MaxPool2d      MaxPool              MatMul      MatMul
//   AvgPool2d      AveragePool          BatchNorm   BatchNormalization
//   GlobalAvgPool2d GlobalAveragePool   Concat      Concat
//   Relu, Sigmoid, Tanh, Exp, Log, Sqrt, Neg (same names)
//   Add, Sub, Mul, Div; AddScalar, MulScalar (Add, Mul with a constant)
//   Square (Mul), Pow, Sum (ReduceSum), Flatten, Reshape, Transpose,
//   Softmax, LogSoftmax
// Dropout is left out (evaluation mode never runs it); anything else, such
// as a loss or a batch-statistics BatchNorm, is Unimplemented.
//
// Example:
//
//   absl::Status s = WriteOnnx(*model, {1, 1, 28, 28}, "lenet", "lenet.onnx");

#ifndef TOOLS_ONNX_EXPORT_H_
#define TOOLS_ONNX_EXPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "nn/module.h"
#include "onnx/onnx_pb.h"
#include "tensor/shape.h"

namespace dive::tools {

// The ONNX model of `model` for inputs of `input_shape` ([N, ...], N
// dynamic); the graph is named `name`, its input "input", its output
// "output". The module's training mode is restored afterwards. Errors:
// Unimplemented naming the first op that ONNX export does not support;
// InvalidArgument when an op does not keep the batch dimension; Internal when
// the ONNX checker rejects the result. (An input shape the model rejects is
// a CHECK failure in the model, as in any forward pass.)
absl::StatusOr<onnx::ModelProto> ExportOnnx(nn::Module& model,
                                            const Shape& input_shape,
                                            const std::string& name);

// ExportOnnx, then writes the serialized model to `path` atomically (never
// through a symlink, never over a file this user did not create).
absl::Status WriteOnnx(nn::Module& model, const Shape& input_shape,
                       const std::string& name, const std::string& path);

}  // namespace dive::tools

#endif  // TOOLS_ONNX_EXPORT_H_
