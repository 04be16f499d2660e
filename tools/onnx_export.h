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
//   // An int8 model (quant/quantized_model.h) as a QDQ graph:
//   s = WriteQuantizedOnnx(*int8_model, {1, 1, 28, 28}, "lenet", "q.onnx");

#ifndef TOOLS_ONNX_EXPORT_H_
#define TOOLS_ONNX_EXPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "nn/module.h"
#include "onnx/onnx_pb.h"
#include "quant/quantized_model.h"
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

// The int8 model `model` (quant/quantized_model.h) as a standard QDQ graph
// (opset 13) for inputs of `input_shape` ([N, ...], N dynamic), named as
// ExportOnnx's. Not traced: built from the model's plan
// (QuantizedModel::Plan), with dive's own numbers, so that ONNX Runtime
// computes what dive's int8 kernels compute, up to rounding:
//
//   int8 Conv2d / Linear  int8 weight initializer -> DequantizeLinear (its
//                         per-output-channel scales, axis 0, int8 zero
//                         point 0); int32 bias -> DequantizeLinear (scale
//                         input_scale * weight_scale[o], axis 0); Conv or
//                         Gemm (transB = 1) on the dequantized uint8 input;
//                         its fused ReLU a Relu. The pattern ONNX Runtime
//                         fuses into QLinearConv / QGemm.
//   uint8 activations     a QuantizeLinear -> DequantizeLinear pair (uint8,
//                         the calibrated scale and zero point) wherever dive
//                         holds one: the model's input quantization, every
//                         int8 layer's output that goes on in uint8, a
//                         block's add or concatenation.
//   uint8 pooling, ReLU   as dive's uint8 kernels: the op on the integers
//                         q - zero_point (DequantizeLinear in scale 1; Cast
//                         and Sub for an average, which ONNX Runtime's
//                         QLinearAveragePool would round otherwise), then
//                         QuantizeLinear in scale 1 (ties to even) and
//                         DequantizeLinear in the input's QParams.
//   float32 fallbacks     traced as ExportOnnx does, between the
//                         DequantizeLinear of their input and the
//                         QuantizeLinear of the next int8 layer's.
//   uint8-table BatchNorm DenseNet's BatchNorm2d before a convolution (a
//                         table of its 256 values per channel in dive):
//                         BatchNormalization (and Relu) in float32 between
//                         DequantizeLinear and QuantizeLinear; dive's table
//                         holds the same results rounded from double.
//   Residual add          Add (and Relu) of the two paths' dequantized
//                         outputs, QuantizeLinear in the block's QParams.
//   Inception, DenseBlock Concat of the paths on the channels, likewise.
//
// Weight and bias initializers keep the checkpoint's names
// ("features.0.weight", "features.0.weight_scale", "features.0.bias").
// Errors name the step (its state_dict prefix and module): Unimplemented
// for a float32 fallback with an op ONNX export does not support, Internal
// when the ONNX checker rejects the graph. In a reduce_range model (its
// activations clamped to 0..127), each QuantizeLinear that may meet values
// above the grid's 127 has a Clip before it at that value.
absl::StatusOr<onnx::ModelProto> ExportQuantizedOnnx(
    const quant::QuantizedModel& model, const Shape& input_shape,
    const std::string& name);

// ExportQuantizedOnnx, then writes it as WriteOnnx does.
absl::Status WriteQuantizedOnnx(const quant::QuantizedModel& model,
                                const Shape& input_shape,
                                const std::string& name,
                                const std::string& path);

}  // namespace dive::tools

#endif  // TOOLS_ONNX_EXPORT_H_
