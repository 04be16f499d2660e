// File: quant/quantized_model.h
// -----------------------------------------------------------------------------
//
// Post-training int8 quantization of a zoo model, and the int8 model it
// gives: a trained float32 network in, calibrated on a few batches, run on
// the int8 kernels of tensor/qgemm.h, tensor/qconv.h and tensor/qops.h
// (numbers: quant/qparams.h).
//
// QuantizeModel puts the model in evaluation mode and fuses it
// (nn::Module::Fuse: a BatchNorm2d after a convolution is folded into its
// weights, Conv2d::EffectiveWeightAndBias), walks its chain of layers
// (nested Sequentials, and the blocks below) and plans each layer:
//
//   int8           Conv2d and Linear (with the ReLU after them, and a folded
//                  BatchNorm2d): int8 weights per output channel, int32 bias
//                  at scale x_scale * w_scale[o], the requantization to the
//                  next layer's uint8 scale (or to float32 when what follows
//                  is float) fused into the kernel's output tile;
//   either domain  MaxPool2d (uint8: no requantization), AvgPool2d,
//                  AdaptiveAvgPool2d, GlobalAvgPool2d (uint8: the rounded
//                  mean in the input's scale), ReLU, Flatten, Dropout (the
//                  identity in evaluation): in uint8 when their input is;
//   uint8 table    a BatchNorm2d that follows no convolution (DenseNet's,
//                  before theirs), with the ReLU after it: per channel, its
//                  float32 output (in double) of each of the 256 uint8
//                  input values, quantized to its output's scale (or
//                  float32 when what follows is float): exact for its
//                  uint8 input; its float32 state is saved under its name
//                  with its input (where quantized) and output QParams;
//   float32        every other layer (Sigmoid, Tanh, Softmax, a BatchNorm1d
//                  after a Linear, ...): its input is
//                  dequantized first, and quantized again for the next int8
//                  layer.
//
// Activations are per-tensor uint8, quantized where a float32 tensor meets
// an int8 layer, and at every int8 layer's output that goes on in uint8;
// calibration runs the float model on the batches given and observes each
// of those tensors (RangeObserver: min/max or percentile).
//
// Blocks with a data flow of their own run in int8 too, each path planned
// as a chain from the block's uint8 input (quantized first where it arrives
// in float32, with "<block>.input_scale"/"_zero_point"), the block's output
// uint8 in its own calibrated QParams ("<block>.output_scale"/
// "_zero_point"):
//
//   models::Residual   relu(conv2(conv1(x)) + shortcut): conv1 with bn1 and
//                      its ReLU, conv2 with bn2 (uint8 in its own scale; the
//                      ReLU comes after the add), the shortcut x or conv3(x);
//                      the add requantizes both parts to the output's scale
//                      with the ReLU fused (tensor/qops.h's QAddU8)
//   models::Inception  the four paths concatenated on the channels: the last
//                      convolution of each writes straight in the
//                      concatenation's scale (its output QParams are the
//                      block's, not stored again), so the concat is a copy
//   models::DenseBlock one block per ConvBlock i ("<block>.net.<i>"):
//                      concat(y, conv_block(y)), y requantized to the
//                      output's scale, the ConvBlock's BatchNorm (before its
//                      convolution, so not foldable) and ReLU a uint8
//                      table, its convolution writing in the output's
//                      scale (tensor/qops.h's QConcatChannelsU8)
//
// Any other container with children is refused with Unimplemented naming
// the block, and so is a path that ends in a float32 layer.
//
// The quantized checkpoint (SaveQuantizedModel, LoadQuantizedModel) is a
// safetensors file with metadata "dive.quantization" = "int8", "model" and
// "input_size" (as float checkpoints), and per int8 layer <name> (its
// state_dict prefix, e.g. "features.0"):
//
//   <name>.weight             int8 [OC, ...]   symmetric, zero point 0
//   <name>.weight_scale       float32 [OC]
//   <name>.bias               int32 [OC]       at scale x_scale * w_scale[o]
//   <name>.input_scale        float32 []       where a float32 input is
//   <name>.input_zero_point   int32 []         quantized for the layer
//   <name>.output_scale       float32 []       where the output goes on in
//   <name>.output_zero_point  int32 []         uint8
//
// and the float32 state of the layers that run in float32 under their own
// names. Metadata "dive.reduce_range" = "true" says the activations were
// calibrated to 0..127 (QuantizeOptions::reduce_range); "false" or none,
// 0..255. Loading rebuilds the model named, checks every tensor (present,
// dtype, shape, scales finite and > 0, zero points in 0..255, and in
// 0..127 under reduce_range) and the reduce_range value, and reports each
// problem naming the tensor.
//
// Example:
//
//   absl::StatusOr<std::shared_ptr<dive::quant::QuantizedModel>> q =
//       dive::quant::QuantizeModel(net, calibration_batches, {});
//   for (const dive::quant::OpPlan& op : (*q)->Ops()) ...   // int8 or not
//   dive::autograd::Variable logits = (**q)(dive::autograd::Variable(x));
//   absl::Status s = dive::quant::SaveQuantizedModel(**q, "lenet", 28,
//                                                    /*extra_metadata=*/{},
//                                                    path);
//   absl::StatusOr<dive::quant::LoadedQuantizedModel> back =
//       dive::quant::LoadQuantizedModel(path);   // back->model: the same

#ifndef QUANT_QUANTIZED_MODEL_H_
#define QUANT_QUANTIZED_MODEL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "autograd/variable.h"
#include "nn/module.h"
#include "quant/qparams.h"
#include "tensor/qgemm.h"
#include "tensor/safetensors.h"

namespace dive::quant {

inline constexpr char kQuantizationKey[] = "dive.quantization";
inline constexpr char kReduceRangeKey[] = "dive.reduce_range";

struct QuantizeOptions {
  Calibration calibration = Calibration::kMinMax;
  double percentile = kDefaultPercentile;
  // PyTorch's reduce_range: every activation calibrated to 0..127
  // (quant/qparams.h's kReducedQuantMax), one bit coarser, and every value
  // the model quantizes or requantizes clamped to 0..127 (a 7-bit uint8:
  // values beyond the calibrated range saturate at 127), so that CPUs
  // with AVX2 and no VNNI run the int8 layers on VPMADDUBSW (tensor/qgemm.h's
  // avx2_u7 path) instead of the widened VPMADDWD; other paths gain
  // nothing. Off by default here; //tools:quantize turns it on where the
  // CPU quantizing has no VNNI (ReduceRangeHelps). Measured with the AVX2
  // paths forced on a Zen 5: the kernels 1.7-1.9x, a ResNet-18 1.5x (1
  // thread), Fashion-MNIST accuracy of an MLP and a BN-LeNet within 0.1%
  // of 0..255's (README).
  bool reduce_range = false;
  // The int8 kernels to pack the weights for (tests); default: this CPU's
  // (DefaultQGemmPath(reduce_range)).
  std::optional<QGemmPath> path;
};

// Whether reduce_range speeds up this CPU's int8 kernels: its default path
// (tensor/qgemm.h's DefaultQGemmPath) is avx2, the one without VNNI.
bool ReduceRangeHelps();

// A --reduce_range flag's value: "true", "false", or "auto"
// (ReduceRangeHelps()); InvalidArgument naming the choices otherwise.
absl::StatusOr<bool> ParseReduceRange(absl::string_view value);

// One layer of the plan, as the tools print it.
struct OpPlan {
  std::string name;      // "features.0" ("" for the model's input)
  std::string describe;  // the module's Describe()
  bool int8 = false;     // runs on int8 / uint8 data
  // "int8 conv, BatchNorm2d folded, ReLU fused, uint8 out", "uint8",
  // "float32 fallback: no int8 kernel", ...
  std::string how;
};

// One step of the plan, read-only, for the tools that export the int8 model
// (tools/onnx_export.h's QDQ graph): what QuantizedModel::Forward computes,
// step by step, with the numbers it computes with.
struct PlanStep {
  enum class Kind {
    kInt8Conv,        // nn::Conv2d (a folded BatchNorm2d in its weights)
    kInt8Linear,      // nn::Linear
    kUint8BatchNorm,  // nn::BatchNorm2d on uint8 input (a table per channel)
    kEither,          // pool, ReLU, Flatten, Dropout: uint8 when uint8_input
    kFloat,           // float32 fallback: `module` on the float32 tensor
    kAdd,             // block: relu(branch 0 + branch 1) (models::Residual)
    kConcat,          // block: the branches on the channels
  };
  Kind kind = Kind::kFloat;
  std::string name;  // state_dict prefix ("features.0", "b2.0")
  // The layer (kInt8Conv: its options; kUint8BatchNorm: its float32 state;
  // kEither, kFloat: what it computes) or the block. Owned by the int8
  // model, which keeps it in evaluation mode: only a forward pass in
  // evaluation mode (a trace) may be run on it.
  std::shared_ptr<nn::Module> module;
  // int8 layers, kUint8BatchNorm and kAdd: the ReLU fused into the output
  // (not the module's own flag: Residual's conv2 leaves its ReLU to the add).
  bool relu = false;
  // int8 layers, kUint8BatchNorm and blocks: the input arrives in float32 and
  // is quantized with `input`; else it is uint8 in `input` already.
  bool quantize_input = false;
  // int8 layers and kUint8BatchNorm: the output is uint8 in `output` (else
  // float32). Blocks always give uint8 in `output`.
  bool uint8_output = false;
  // kEither: runs on uint8 data (keeping its input's QParams).
  bool uint8_input = false;
  QParams input, output;
  // int8 layers: int8 [OC, ...] (zero point 0), float32 [OC], int32 [OC] at
  // scale input.scale * weight_scale[o].
  Tensor weight, weight_scale, bias;
  // Blocks: the paths from the block's uint8 input (an empty one is the
  // input itself), each giving uint8.
  std::vector<std::vector<PlanStep>> branches;
};

// The int8 model: a Module (so train::Evaluate and the benchmarks run it as
// any other) with no parameters, holding the float32 model for its float32
// layers. Made by QuantizeModel or QuantizedModelFrom.
class QuantizedModel : public nn::Module {
 public:
  struct Step;  // one layer of the plan (quantized_model.cc)
  ~QuantizedModel() override;

  // x float32 [N, C, H, W] (the float model's input) -> float32 logits.
  autograd::Variable Forward(const autograd::Variable& x) override;
  // "QuantizedModel(int8: 5 of 12 layers)".
  std::string Describe() const override;
  // Every layer of the plan, in order; a block's add or concat after the
  // layers of its paths (one path after the other).
  std::vector<OpPlan> Ops() const;
  // The whole plan, in order, nested as the blocks are (PlanStep).
  std::vector<PlanStep> Plan() const;
  // The quantized checkpoint's tensors (above).
  std::map<std::string, Tensor> QuantizedStateDict() const;
  // Activations calibrated to 0..127 (QuantizeOptions::reduce_range).
  bool reduce_range() const { return reduce_range_; }

 private:
  friend absl::StatusOr<std::shared_ptr<QuantizedModel>> QuantizeModel(
      std::shared_ptr<nn::Module>, const std::vector<Tensor>&,
      const QuantizeOptions&);
  friend absl::StatusOr<std::shared_ptr<QuantizedModel>> QuantizedModelFrom(
      std::shared_ptr<nn::Module>, const std::map<std::string, Tensor>&, bool);
  QuantizedModel() = default;

  std::shared_ptr<nn::Module> float_model_;  // owns the modules of steps_
  std::vector<Step> steps_;
  bool reduce_range_ = false;
};

// Quantizes `model` (a zoo model with trained weights; put in evaluation
// mode and fused) with activation ranges calibrated on `calibration_batches`
// (float32 inputs of the model; at least one). Unimplemented naming the
// block for a container QuantizeModel does not know (above); InvalidArgument
// for no batches or a bias beyond the int8 kernels' range.
absl::StatusOr<std::shared_ptr<QuantizedModel>> QuantizeModel(
    std::shared_ptr<nn::Module> model,
    const std::vector<Tensor>& calibration_batches,
    const QuantizeOptions& options);

// The int8 model of `model` (freshly built, of the architecture `state`
// was quantized from) with the tensors of a quantized checkpoint, its
// activations calibrated to 0..127 where `reduce_range`. InvalidArgument
// naming every missing, unexpected or ill-typed tensor and every bad scale
// or zero point (above 127 under reduce_range).
absl::StatusOr<std::shared_ptr<QuantizedModel>> QuantizedModelFrom(
    std::shared_ptr<nn::Module> model,
    const std::map<std::string, Tensor>& state, bool reduce_range = false);

// Writes the quantized checkpoint of `model`, the zoo model `model_name`
// at `input_size`, with `extra_metadata` (how it was calibrated, say) and
// its reduce_range, to
// `path` (atomically, never through a symlink or over a file that is not
// this user's regular file: tensor/safetensors.h).
absl::Status SaveQuantizedModel(
    const QuantizedModel& model, const std::string& model_name,
    int64_t input_size,
    const std::map<std::string, std::string>& extra_metadata,
    const std::string& path);

// Whether `file` is a quantized checkpoint (its metadata says so).
bool IsQuantized(const SafetensorsFile& file);

struct LoadedQuantizedModel {
  std::string name;
  int64_t input_size = 0;
  std::shared_ptr<QuantizedModel> model;
};

// Reads a quantized checkpoint and builds its int8 model. FailedPrecondition
// for a float32 checkpoint (saying to quantize it first); InvalidArgument
// for an unknown model, a bad input size, a dive.reduce_range other than
// "true" or "false", or any of QuantizedModelFrom's.
absl::StatusOr<LoadedQuantizedModel> LoadQuantizedModel(
    const std::string& path);
absl::StatusOr<LoadedQuantizedModel> LoadQuantizedModel(
    const SafetensorsFile& file, const std::string& source);

}  // namespace dive::quant

#endif  // QUANT_QUANTIZED_MODEL_H_
