#include "tools/onnx_export.h"

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "autograd/trace.h"
#include "autograd/variable.h"
#include "glog/logging.h"
#include "nn/conv2d.h"
#include "nn/pool.h"
#include "onnx/checker.h"
#include "tensor/file_io.h"

namespace dive::tools {
namespace {

constexpr int64_t kOpsetVersion = 13;
constexpr int64_t kIrVersion = 7;  // the IR version of opset 13

// A value of the graph being built: the traced tensor, its ONNX name and
// whether its first dimension is the (dynamic) batch.
struct Value {
  Tensor tensor;
  std::string name;
  bool batched;
};

class GraphBuilder {
 public:
  GraphBuilder(onnx::GraphProto* graph,
               std::vector<std::pair<std::string, Tensor>> state)
      : graph_(graph), state_(std::move(state)) {}

  void Bind(const Tensor& t, std::string name, bool batched) {
    values_.push_back(Value{t, std::move(name), batched});
  }

  // The value `t` is, or a new initializer holding it: under its state-dict
  // name for a parameter or buffer, as a constant otherwise.
  const Value& Resolve(const Tensor& t) {
    // Latest binding first: a view op may rebind a value to a new name.
    for (auto it = values_.rbegin(); it != values_.rend(); ++it) {
      if (autograd::SameValue(it->tensor, t)) return *it;
    }
    std::string name;
    for (const auto& [state_name, state_tensor] : state_) {
      if (autograd::SameValue(state_tensor, t)) name = state_name;
    }
    if (name.empty()) name = absl::StrCat("constant_", constants_++);
    // A traced op's operands are float32 (as its graph's values are).
    CHECK(t.dtype() == DType::kFloat32)
        << "ONNX export: " << name << " is not float32";
    AddInitializer(t, name);
    Bind(t, name, /*batched=*/false);
    return values_.back();
  }

  std::string Int64Constant(const std::vector<int64_t>& values) {
    const std::string name = absl::StrCat("constant_", constants_++);
    onnx::TensorProto* init = graph_->add_initializer();
    init->set_name(name);
    init->set_data_type(onnx::TensorProto::INT64);
    init->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) init->add_int64_data(v);
    return name;
  }

  // Makes a parameter or buffer known under `name` (Resolve's lookup).
  void AddState(std::string name, const Tensor& t) {
    state_.emplace_back(std::move(name), t);
  }

  // An initializer `name` holding t (float32, int32, int8 or uint8).
  void AddInitializer(const Tensor& t, const std::string& name) {
    const Tensor c = t.Contiguous();
    onnx::TensorProto* init = graph_->add_initializer();
    init->set_name(name);
    switch (c.dtype()) {
      case DType::kFloat32:
        init->set_data_type(onnx::TensorProto::FLOAT);
        break;
      case DType::kInt32:
        init->set_data_type(onnx::TensorProto::INT32);
        break;
      case DType::kInt8:
        init->set_data_type(onnx::TensorProto::INT8);
        break;
      case DType::kUint8:
        init->set_data_type(onnx::TensorProto::UINT8);
        break;
      default:
        LOG(FATAL) << "ONNX export: " << name << " is " << DTypeName(c.dtype());
    }
    for (int64_t d : c.shape().dims()) init->add_dims(d);
    // Little endian, as raw_data wants.
    init->set_raw_data(c.raw_data(), c.numel() * DTypeSize(c.dtype()));
  }

  // A new name, `prefix` and a number, for a value or an initializer.
  std::string Fresh(const std::string& prefix) {
    return absl::StrCat(prefix.empty() ? "value" : prefix, "_", fresh_++);
  }

  std::string ScalarConstant(float value) {
    const std::string name = absl::StrCat("constant_", constants_++);
    AddInitializer(Tensor::Scalar(value), name);
    return name;
  }

  onnx::NodeProto* Node(const std::string& op_type,
                        const std::vector<std::string>& inputs,
                        const std::string& output) {
    onnx::NodeProto* node = graph_->add_node();
    node->set_op_type(op_type);
    node->set_name(absl::StrCat(op_type, "_", graph_->node_size() - 1));
    for (const std::string& in : inputs) node->add_input(in);
    node->add_output(output);
    return node;
  }

 private:
  onnx::GraphProto* graph_;
  std::vector<std::pair<std::string, Tensor>> state_;
  std::vector<Value> values_;
  int constants_ = 0;
  int fresh_ = 0;
};

void SetInts(onnx::NodeProto* node, const std::string& name,
             const std::vector<int64_t>& values) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}

void SetInt(onnx::NodeProto* node, const std::string& name, int64_t value) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

void SetFloat(onnx::NodeProto* node, const std::string& name, float value) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(value);
}

// Kernel, strides and pads of a window op: pads are begin (H, W) then end.
void SetWindow(onnx::NodeProto* node, const autograd::TracedOp& op,
               const std::vector<int64_t>& kernel) {
  const std::vector<int64_t>& pad = op.ints.at("pad");
  SetInts(node, "kernel_shape", kernel);
  SetInts(node, "strides", op.ints.at("stride"));
  SetInts(node, "pads", {pad[0], pad[1], pad[0], pad[1]});
}

void SetValueInfo(onnx::ValueInfoProto* info, const std::string& name,
                  const Shape& shape, bool batched) {
  info->set_name(name);
  onnx::TypeProto::Tensor* type = info->mutable_type()->mutable_tensor_type();
  type->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* dims = type->mutable_shape();
  for (int i = 0; i < shape.rank(); ++i) {
    if (i == 0 && batched) {
      dims->add_dim()->set_dim_param("N");
    } else {
      dims->add_dim()->set_dim_value(shape[i]);
    }
  }
}

// Adds the nodes of one traced op whose output is to be called `out`.
// Returns whether the output keeps the batch dimension, or an error.
absl::StatusOr<bool> EmitOp(const autograd::TracedOp& op,
                            const std::string& out, GraphBuilder& g) {
  std::vector<std::string> in;
  bool batched = false;
  for (const Tensor& t : op.inputs) {
    if (!t.defined()) continue;  // an absent optional input (a bias)
    const Value& v = g.Resolve(t);
    in.push_back(v.name);
    batched = batched || v.batched;
  }
  const std::string& name = op.op;
  const Shape& xs = op.inputs[0].shape();
  const Shape& ys = op.output.shape();
  // A fused op's ReLU (int "relu" 1) becomes a Relu node after the op's
  // own, which then writes `pre_relu`.
  const bool relu = op.ints.count("relu") > 0 && op.ints.at("relu")[0] != 0;
  const std::string pre_relu = relu ? absl::StrCat(out, "_pre_relu") : out;
  if (name == "Conv2d" || name == "FusedConv2d") {
    // Inputs x, w, bias (may be undefined), residual (FusedConv2d, may be
    // absent): Conv, then Add of the residual, then Relu.
    const bool has_bias = op.inputs.size() > 2 && op.inputs[2].defined();
    const bool has_residual = op.inputs.size() > 3 && op.inputs[3].defined();
    std::vector<std::string> conv_in(in.begin(), in.begin() + 2);
    if (has_bias) conv_in.push_back(in[2]);
    const std::string conv_out =
        has_residual ? absl::StrCat(out, "_conv") : pre_relu;
    SetWindow(g.Node("Conv", conv_in, conv_out), op,
              {op.inputs[1].dim(2), op.inputs[1].dim(3)});
    if (has_residual) g.Node("Add", {conv_out, in.back()}, pre_relu);
  } else if (name == "MaxPool2d" || name == "AvgPool2d") {
    onnx::NodeProto* node =
        g.Node(name == "MaxPool2d" ? "MaxPool" : "AveragePool", in, out);
    SetWindow(node, op, op.ints.at("kernel"));
    if (name == "AvgPool2d") SetInt(node, "count_include_pad", 1);
  } else if (name == "GlobalAvgPool2d") {
    g.Node("GlobalAveragePool", in, out);
  } else if (name == "Linear") {
    SetInt(g.Node("Gemm", in, out), "transB", 1);
  } else if (name == "BatchNorm") {
    if (op.ints.at("training")[0] != 0) {
      return absl::UnimplementedError(
          "ONNX export: BatchNorm with batch statistics (training mode); "
          "export runs the model in evaluation mode, so some module calls "
          "the BatchNorm function with training=true directly");
    }
    SetFloat(g.Node("BatchNormalization", in, pre_relu), "epsilon",
             op.floats.at("eps"));
  } else if (name == "Concat") {
    SetInt(g.Node("Concat", in, out), "axis", op.ints.at("axis")[0]);
  } else if (name == "Add" || name == "Sub" || name == "Mul" || name == "Div" ||
             name == "MatMul" || name == "Relu" || name == "Sigmoid" ||
             name == "Tanh" || name == "Exp" || name == "Log" ||
             name == "Sqrt" || name == "Neg") {
    g.Node(name, in, out);
  } else if (name == "AddScalar" || name == "MulScalar") {
    in.push_back(g.ScalarConstant(op.floats.at("value")));
    g.Node(name == "AddScalar" ? "Add" : "Mul", in, out);
  } else if (name == "Pow") {
    in.push_back(g.ScalarConstant(op.floats.at("exponent")));
    g.Node("Pow", in, out);
  } else if (name == "Square") {
    g.Node("Mul", {in[0], in[0]}, out);
  } else if (name == "Sum") {
    const std::vector<int64_t>& axes = op.ints.at("axes");
    if (!axes.empty()) in.push_back(g.Int64Constant(axes));
    SetInt(g.Node("ReduceSum", in, out), "keepdims", op.ints.at("keepdim")[0]);
    if (batched && (axes.empty() || axes[0] == 0) &&
        !op.ints.at("keepdim")[0]) {
      batched = false;  // the batch was summed away
    }
  } else if (name == "Softmax" || name == "LogSoftmax") {
    SetInt(g.Node(name, in, out), "axis", op.ints.at("axis")[0]);
  } else if (name == "Transpose") {
    std::vector<int64_t> perm;
    for (int i = 0; i < xs.rank(); ++i) perm.push_back(i);
    std::swap(perm[op.ints.at("axes")[0]], perm[op.ints.at("axes")[1]]);
    if (batched && perm[0] != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("ONNX export: Transpose moves the batch dimension of ",
                       xs.ToString()));
    }
    SetInts(g.Node("Transpose", in, out), "perm", perm);
  } else if (name == "Flatten" && op.ints.at("start")[0] == 1 &&
             op.ints.at("end")[0] == xs.rank() - 1) {
    SetInt(g.Node("Flatten", in, out), "axis", 1);
  } else if (name == "Flatten" || name == "Reshape") {
    std::vector<int64_t> shape(ys.dims().begin(), ys.dims().end());
    if (batched) {
      if (ys.rank() == 0 || ys[0] != xs[0]) {
        return absl::InvalidArgumentError(absl::StrCat(
            "ONNX export: ", name, " from ", xs.ToString(), " to ",
            ys.ToString(),
            " does not keep the batch dimension, so the graph would only work "
            "for a batch of ",
            xs[0]));
      }
      shape[0] = 0;  // ONNX Reshape: copy the input's dimension
    }
    in.push_back(g.Int64Constant(shape));
    g.Node("Reshape", in, out);
  } else if (name == "Dropout") {
    return absl::UnimplementedError(
        "ONNX export: Dropout ran in evaluation mode; it must be left out "
        "(nn::Dropout is; call the Dropout function only when training)");
  } else {
    return absl::UnimplementedError(
        absl::StrCat("ONNX export: op ", name, " is not supported"));
  }
  if (relu) {
    if (name != "FusedConv2d" && name != "BatchNorm") {
      return absl::UnimplementedError(absl::StrCat(
          "ONNX export: op ", name, " with a fused ReLU is not supported"));
    }
    g.Node("Relu", {pre_relu}, out);
  }
  return batched;
}

// An empty opset-13 model whose graph is called `name`.
onnx::ModelProto NewModel(const std::string& name) {
  onnx::ModelProto proto;
  proto.set_ir_version(kIrVersion);
  proto.set_producer_name("dive");
  proto.add_opset_import()->set_version(kOpsetVersion);
  proto.mutable_graph()->set_name(name);
  return proto;
}

// Internal unless the ONNX checker accepts `proto`.
absl::Status CheckModel(const onnx::ModelProto& proto,
                        const std::string& name) {
  try {
    onnx::checker::check_model(proto);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("ONNX export: the ONNX checker rejects the graph of ",
                     name, ": ", e.what()));
  }
  return absl::OkStatus();
}

// Writes the serialized `proto` to `path` (checked with CheckReplaceable
// before the export), atomically.
absl::Status WriteModel(const onnx::ModelProto& proto, const std::string& name,
                        const std::string& path) {
  std::string bytes;
  if (!proto.SerializeToString(&bytes)) {
    return absl::InternalError(absl::StrCat("ONNX export: cannot serialize ",
                                            name, " (over protobuf's 2 GiB?)"));
  }
  return WriteFileAtomically(path, bytes);
}

}  // namespace

absl::StatusOr<onnx::ModelProto> ExportOnnx(nn::Module& model,
                                            const Shape& input_shape,
                                            const std::string& name) {
  if (input_shape.rank() == 0 || input_shape[0] < 1) {
    return absl::InvalidArgumentError(absl::StrCat("ONNX export: input shape ",
                                                   input_shape.ToString(),
                                                   " has no batch dimension"));
  }
  const bool was_training = model.is_training();
  model.Eval();
  const autograd::Variable input(Tensor::Zeros(input_shape));
  std::vector<autograd::TracedOp> ops;
  Tensor output;
  {
    autograd::NoGradGuard no_grad;
    autograd::TraceRecorder recorder;
    output = model(input).data();
    ops = recorder.ops();
  }
  model.Train(was_training);

  onnx::ModelProto proto = NewModel(name);
  onnx::GraphProto* graph = proto.mutable_graph();
  std::vector<std::pair<std::string, Tensor>> state;
  for (const auto& [state_name, tensor] : model.StateDict()) {
    state.emplace_back(state_name, tensor);
  }
  GraphBuilder g(graph, std::move(state));
  g.Bind(input.data(), "input", /*batched=*/true);
  SetValueInfo(graph->add_input(), "input", input_shape, /*batched=*/true);

  // The last op that yields the model's output names it "output".
  int last = -1;
  for (int i = 0; i < static_cast<int>(ops.size()); ++i) {
    if (autograd::SameValue(ops[i].output, output)) last = i;
  }
  for (int i = 0; i < static_cast<int>(ops.size()); ++i) {
    const autograd::TracedOp& op = ops[i];
    const std::string out = i == last ? "output" : absl::StrCat(op.op, "_", i);
    absl::StatusOr<bool> batched = EmitOp(op, out, g);
    if (!batched.ok()) return batched.status();
    g.Bind(op.output, out, *batched);
  }
  const Value& result = g.Resolve(output);
  if (result.name != "output") g.Node("Identity", {result.name}, "output");
  SetValueInfo(graph->add_output(), "output", output.shape(), result.batched);

  if (absl::Status s = CheckModel(proto, name); !s.ok()) return s;
  return proto;
}

absl::Status WriteOnnx(nn::Module& model, const Shape& input_shape,
                       const std::string& name, const std::string& path) {
  if (absl::Status s = CheckReplaceable(path); !s.ok()) return s;
  absl::StatusOr<onnx::ModelProto> proto = ExportOnnx(model, input_shape, name);
  if (!proto.ok()) return proto.status();
  return WriteModel(*proto, name, path);
}

// ---- QDQ export of an int8 model ---------------------------------------

namespace {

using quant::PlanStep;
using quant::QParams;

// An activation of the graph: the float32 value `name` (of `shape`, its
// first dimension the batch) and, when dive holds it in uint8, its QParams:
// then `name` is the output of a DequantizeLinear in `q`.
struct Activation {
  std::string name;
  Shape shape;
  bool uint8 = false;
  QParams q;
  std::string quantized;  // uint8: the QuantizeLinear's output
};

// Adds the nodes of an int8 model's plan, step by step, to a graph. An
// error names the step (and, inside a block, the block first).
class QdqExporter {
 public:
  // `quant_max`: the largest quantized activation, 255, or 127 for a
  // reduce_range model (quant/qparams.h kReducedQuantMax).
  QdqExporter(GraphBuilder& g, int32_t quant_max)
      : g_(g), quant_max_(quant_max) {}

  // The steps in turn from x; returns the last one's output.
  absl::StatusOr<Activation> Chain(const std::vector<PlanStep>& steps,
                                   Activation x) {
    for (const PlanStep& s : steps) {
      absl::StatusOr<Activation> y = Step(s, x);
      if (!y.ok()) {
        return absl::Status(
            y.status().code(),
            absl::StrCat("QDQ ONNX export of ", s.name.empty() ? "?" : s.name,
                         " (", s.module->Describe(),
                         "): ", y.status().message()));
      }
      x = *std::move(y);
    }
    return x;
  }

 private:
  absl::StatusOr<Activation> Step(const PlanStep& s, const Activation& x) {
    switch (s.kind) {
      case PlanStep::Kind::kInt8Conv:
      case PlanStep::Kind::kInt8Linear:
        return Int8Layer(s, x);
      case PlanStep::Kind::kUint8BatchNorm:
        return BatchNorm(s, x);
      case PlanStep::Kind::kEither:
      case PlanStep::Kind::kFloat:
        return Traced(s, x);
      case PlanStep::Kind::kAdd:
      case PlanStep::Kind::kConcat:
        return Block(s, x);
    }
    return absl::InternalError("unknown step kind");
  }

  // QuantizeLinear then DequantizeLinear of `x` in `q` (uint8): dive's
  // rounding to its uint8 grid, as ONNX Runtime fuses it with the
  // neighbouring ops. For a reduce_range model, whose grid ends at 127
  // where QuantizeLinear's ends at 255, x first goes through a Clip at
  // (127 - zero_point) x scale, which QuantizeLinear rounds to 127 exactly:
  // dive's clamp, and a Clip ONNX Runtime cannot drop as redundant.
  Activation QuantDequant(const Activation& x, const QParams& q,
                          const std::string& prefix) {
    const auto [scale, zp] = QParamsInitializers(q, prefix);
    std::string input = x.name;
    if (quant_max_ < 255) {
      input = g_.Fresh(absl::StrCat(prefix, "_clip"));
      g_.Node("Clip",
              {x.name, "",
               g_.ScalarConstant(static_cast<float>(quant_max_ - q.zero_point) *
                                 q.scale)},
              input);
    }
    const std::string quantized = g_.Fresh(absl::StrCat(prefix, "_uint8"));
    g_.Node("QuantizeLinear", {input, scale, zp}, quantized);
    Activation y = x;
    y.name = g_.Fresh(prefix);
    g_.Node("DequantizeLinear", {quantized, scale, zp}, y.name);
    y.uint8 = true;
    y.q = q;
    y.quantized = quantized;
    return y;
  }

  // Scalar initializers of q's scale (float32) and zero point (uint8).
  std::pair<std::string, std::string> QParamsInitializers(
      const QParams& q, const std::string& prefix) {
    const std::string scale = g_.Fresh(absl::StrCat(prefix, "_scale"));
    g_.AddInitializer(Tensor::Scalar(q.scale), scale);
    const std::string zp = g_.Fresh(absl::StrCat(prefix, "_zero_point"));
    Tensor z = Tensor::Empty({}, DType::kUint8);
    *z.data<uint8_t>() = static_cast<uint8_t>(q.zero_point);
    g_.AddInitializer(z, zp);
    return {scale, zp};
  }

  // The uint8 input of an int8 layer or a block: x quantized in s.input
  // where it arrives in float32, else x itself (in s.input already).
  absl::StatusOr<Activation> Uint8Input(const PlanStep& s,
                                        const Activation& x) {
    if (s.quantize_input) {
      return QuantDequant(x, s.input, absl::StrCat(s.name, ".input"));
    }
    if (!x.uint8) {
      return absl::InternalError("the plan says uint8 input, got float32");
    }
    if (x.q.scale != s.input.scale || x.q.zero_point != s.input.zero_point) {
      return absl::InternalError(absl::StrCat(
          "the plan's input QParams (", s.input.scale, ", ", s.input.zero_point,
          ") are not those of the uint8 input (", x.q.scale, ", ",
          x.q.zero_point, ")"));
    }
    return x;
  }

  // The output of int8 layer s, `y` (float32): its ReLU, then its uint8
  // QParams where it goes on in uint8.
  Activation Int8Output(const PlanStep& s, Activation y) {
    if (s.relu) {
      const std::string relu = g_.Fresh(absl::StrCat(s.name, ".relu"));
      g_.Node("Relu", {y.name}, relu);
      y.name = relu;
    }
    if (s.uint8_output) return QuantDequant(y, s.output, s.name);
    return y;
  }

  // int8 weights per output channel and int32 bias, each dequantized along
  // axis 0: the pattern ONNX Runtime fuses into QLinearConv / QGemm.
  absl::StatusOr<Activation> Int8Layer(const PlanStep& s, const Activation& x) {
    absl::StatusOr<Activation> in = Uint8Input(s, x);
    if (!in.ok()) return in.status();
    if (s.weight.dtype() != DType::kInt8 ||
        s.weight_scale.dtype() != DType::kFloat32 ||
        s.bias.dtype() != DType::kInt32) {
      return absl::InternalError(
          "weights not int8, float32 scales, int32 bias");
    }
    const int64_t oc = s.weight.dim(0);
    const std::string w = Join(s.name, "weight");
    const std::string ws = Join(s.name, "weight_scale");
    const std::string wzp = Join(s.name, "weight_zero_point");
    g_.AddInitializer(s.weight, w);
    g_.AddInitializer(s.weight_scale, ws);
    g_.AddInitializer(Tensor::Zeros({oc}, DType::kInt8), wzp);
    const std::string w_dq = Join(s.name, "weight_dequantized");
    SetInt(g_.Node("DequantizeLinear", {w, ws, wzp}, w_dq), "axis", 0);
    // The bias's scale: input scale x weight scale, per channel.
    Tensor bias_scale = Tensor::Empty({oc}, DType::kFloat32);
    const Tensor wsc = s.weight_scale.Contiguous();
    for (int64_t o = 0; o < oc; ++o) {
      bias_scale.data<float>()[o] = static_cast<float>(
          static_cast<double>(s.input.scale) * wsc.data<float>()[o]);
    }
    const std::string b = Join(s.name, "bias");
    const std::string bs = Join(s.name, "bias_scale");
    const std::string bzp = Join(s.name, "bias_zero_point");
    g_.AddInitializer(s.bias, b);
    g_.AddInitializer(bias_scale, bs);
    g_.AddInitializer(Tensor::Zeros({oc}, DType::kInt32), bzp);
    const std::string b_dq = Join(s.name, "bias_dequantized");
    SetInt(g_.Node("DequantizeLinear", {b, bs, bzp}, b_dq), "axis", 0);

    Activation y;
    y.name = g_.Fresh(s.name);
    if (s.kind == PlanStep::Kind::kInt8Conv) {
      const auto* conv = dynamic_cast<const nn::Conv2d*>(s.module.get());
      if (conv == nullptr) return absl::InternalError("not a Conv2d");
      const nn::Conv2dOptions& o = conv->options();
      if (in->shape.rank() != 4 || in->shape[1] != o.in_channels) {
        return absl::InvalidArgumentError(
            absl::StrCat("expected input [N, ", o.in_channels, ", H, W], got ",
                         in->shape.ToString()));
      }
      const int64_t oh =
          (in->shape[2] + 2 * o.pad_h - o.kernel_h) / o.stride_h + 1;
      const int64_t ow =
          (in->shape[3] + 2 * o.pad_w - o.kernel_w) / o.stride_w + 1;
      if (oh < 1 || ow < 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input ", in->shape.ToString(), " is smaller than the kernel"));
      }
      onnx::NodeProto* node = g_.Node("Conv", {in->name, w_dq, b_dq}, y.name);
      SetInts(node, "kernel_shape", {o.kernel_h, o.kernel_w});
      SetInts(node, "strides", {o.stride_h, o.stride_w});
      SetInts(node, "pads", {o.pad_h, o.pad_w, o.pad_h, o.pad_w});
      y.shape = Shape({in->shape[0], oc, oh, ow});
    } else {
      if (in->shape.rank() != 2 || in->shape[1] != s.weight.dim(1)) {
        return absl::InvalidArgumentError(
            absl::StrCat("expected input [N, ", s.weight.dim(1), "], got ",
                         in->shape.ToString()));
      }
      SetInt(g_.Node("Gemm", {in->name, w_dq, b_dq}, y.name), "transB", 1);
      y.shape = Shape({in->shape[0], oc});
    }
    return Int8Output(s, y);
  }

  // The module of step s traced on x (float32, or the dequantized uint8
  // values): the float32 ops of tools/onnx_export.h.
  absl::StatusOr<Activation> Trace(const PlanStep& s, const Activation& x) {
    const Tensor input = Tensor::Zeros(x.shape);
    std::vector<autograd::TracedOp> ops;
    Tensor output;
    {
      autograd::NoGradGuard no_grad;
      autograd::TraceRecorder recorder;
      output = (*s.module)(autograd::Variable(input)).data();
      ops = recorder.ops();
    }
    for (const auto& [key, t] : s.module->StateDict()) {
      g_.AddState(Join(s.name, key), t);
    }
    g_.Bind(input, x.name, /*batched=*/true);
    for (const autograd::TracedOp& op : ops) {
      const std::string out = g_.Fresh(absl::StrCat(s.name, ".", op.op));
      absl::StatusOr<bool> batched = EmitOp(op, out, g_);
      if (!batched.ok()) return batched.status();
      g_.Bind(op.output, out, *batched);
    }
    Activation y;
    y.name = g_.Resolve(output).name;
    y.shape = output.shape();
    return y;
  }

  // An either-domain layer (pooling, ReLU, Flatten, Dropout) or a float32
  // fallback: the float32 op. On uint8 data, dive's kernels keep the
  // input's QParams and work on the integers q - zero_point (an average is
  // rounded half to even, exactly); so does the graph: the op runs on those
  // integers in float32 (exact, and so is an average of 4 of them, where
  // one of values in scale s would put the ties on either side), quantized
  // again in scale 1 (ties to even) and dequantized in the input's scale.
  // The integers come from a DequantizeLinear in scale 1 (ONNX Runtime then
  // runs a MaxPool on the uint8 data), but for an average from a Cast and a
  // Sub: ONNX Runtime would fuse DequantizeLinear, AveragePool and
  // QuantizeLinear into its QLinearAveragePool, which rounds the ties
  // otherwise (measured: a third of a DenseNet transition's outputs one
  // step off).
  absl::StatusOr<Activation> Traced(const PlanStep& s, const Activation& x) {
    if (s.kind == PlanStep::Kind::kEither && s.uint8_input != x.uint8) {
      return absl::InternalError("the plan's domain is not the graph's");
    }
    if (s.kind != PlanStep::Kind::kEither || !x.uint8) return Trace(s, x);
    const auto [one, zp] = QParamsInitializers({1.0f, x.q.zero_point},
                                               absl::StrCat(s.name, ".int"));
    Activation integers = x;
    integers.name = g_.Fresh(absl::StrCat(s.name, ".int"));
    const nn::Module* m = s.module.get();
    if (dynamic_cast<const nn::AvgPool2d*>(m) != nullptr ||
        dynamic_cast<const nn::AdaptiveAvgPool2d*>(m) != nullptr ||
        dynamic_cast<const nn::GlobalAvgPool2d*>(m) != nullptr) {
      const std::string cast = g_.Fresh(absl::StrCat(s.name, ".cast"));
      SetInt(g_.Node("Cast", {x.quantized}, cast), "to",
             onnx::TensorProto::FLOAT);
      g_.Node("Sub",
              {cast, g_.ScalarConstant(static_cast<float>(x.q.zero_point))},
              integers.name);
    } else {
      g_.Node("DequantizeLinear", {x.quantized, one, zp}, integers.name);
    }
    absl::StatusOr<Activation> y = Trace(s, integers);
    if (!y.ok()) return y;
    if (y->name == integers.name) return x;  // Dropout: no op
    const std::string quantized = g_.Fresh(absl::StrCat(s.name, "_uint8"));
    g_.Node("QuantizeLinear", {y->name, one, zp}, quantized);
    const auto [scale, zp2] = QParamsInitializers(x.q, s.name);
    Activation out = *y;
    out.name = g_.Fresh(s.name);
    g_.Node("DequantizeLinear", {quantized, scale, zp2}, out.name);
    out.uint8 = true;
    out.q = x.q;
    out.quantized = quantized;
    return out;
  }

  // DenseNet's BatchNorm2d before a convolution, a table per channel in
  // dive: here its float32 BatchNormalization (and ReLU) between the uint8
  // input and output, equal up to float32 rounding (dive's tables are of
  // the double results).
  absl::StatusOr<Activation> BatchNorm(const PlanStep& s, const Activation& x) {
    absl::StatusOr<Activation> in = Uint8Input(s, x);
    if (!in.ok()) return in.status();
    absl::StatusOr<Activation> y = Trace(s, *in);
    if (!y.ok()) return y;
    // The module applies the ReLU it absorbed; a ReLU module after it is
    // the step's.
    PlanStep rest = s;
    rest.relu = s.relu && !s.module->AppliesRelu();
    return Int8Output(rest, *y);
  }

  // Residual's add and the concatenations: each path from the block's
  // uint8 input, then the float32 Add (with the ReLU) or Concat of the
  // paths' dequantized outputs, quantized in the block's output QParams
  // (dive's QAddU8 and QConcatChannelsU8 requantize each part to them).
  absl::StatusOr<Activation> Block(const PlanStep& s, const Activation& x) {
    if (s.kind == PlanStep::Kind::kAdd && s.branches.size() != 2) {
      return absl::UnimplementedError(
          absl::StrCat("an add of ", s.branches.size(), " paths (expected 2)"));
    }
    absl::StatusOr<Activation> in = Uint8Input(s, x);
    if (!in.ok()) return in.status();
    std::vector<std::string> parts;
    Shape shape;
    int64_t channels = 0;
    for (size_t i = 0; i < s.branches.size(); ++i) {
      absl::StatusOr<Activation> part = Chain(s.branches[i], *in);
      if (!part.ok()) return part.status();
      if (!part->uint8) {
        return absl::UnimplementedError(
            absl::StrCat("path ", i, " ends in float32"));
      }
      if (i == 0) shape = part->shape;
      const bool fits =
          s.kind == PlanStep::Kind::kAdd
              ? part->shape == shape
              : part->shape.rank() == 4 && part->shape[0] == shape[0] &&
                    part->shape[2] == shape[2] && part->shape[3] == shape[3];
      if (!fits) {
        return absl::InvalidArgumentError(
            absl::StrCat("path ", i, " gives ", part->shape.ToString(),
                         ", path 0 ", shape.ToString()));
      }
      channels += part->shape.rank() > 1 ? part->shape[1] : 0;
      parts.push_back(part->name);
    }
    Activation y;
    y.name = g_.Fresh(s.name);
    y.shape = shape;
    if (s.kind == PlanStep::Kind::kAdd) {
      g_.Node("Add", parts, y.name);
      if (s.relu) {
        const std::string relu = g_.Fresh(absl::StrCat(s.name, ".relu"));
        g_.Node("Relu", {y.name}, relu);
        y.name = relu;
      }
    } else {
      SetInt(g_.Node("Concat", parts, y.name), "axis", 1);
      y.shape = Shape({shape[0], channels, shape[2], shape[3]});
    }
    return QuantDequant(y, s.output, s.name);
  }

  static std::string Join(const std::string& prefix, const std::string& key) {
    return prefix.empty() ? key : absl::StrCat(prefix, ".", key);
  }

  GraphBuilder& g_;
  const int32_t quant_max_;
};

}  // namespace

absl::StatusOr<onnx::ModelProto> ExportQuantizedOnnx(
    const quant::QuantizedModel& model, const Shape& input_shape,
    const std::string& name) {
  if (input_shape.rank() == 0 || input_shape[0] < 1) {
    return absl::InvalidArgumentError(absl::StrCat("ONNX export: input shape ",
                                                   input_shape.ToString(),
                                                   " has no batch dimension"));
  }
  onnx::ModelProto proto = NewModel(name);
  onnx::GraphProto* graph = proto.mutable_graph();
  GraphBuilder g(graph, {});
  SetValueInfo(graph->add_input(), "input", input_shape, /*batched=*/true);
  Activation x;
  x.name = "input";
  x.shape = input_shape;
  QdqExporter exporter(g, model.reduce_range() ? quant::kReducedQuantMax : 255);
  absl::StatusOr<Activation> y = exporter.Chain(model.Plan(), x);
  if (!y.ok()) return y.status();
  g.Node("Identity", {y->name}, "output");
  SetValueInfo(graph->add_output(), "output", y->shape, /*batched=*/true);
  if (absl::Status s = CheckModel(proto, name); !s.ok()) return s;
  return proto;
}

absl::Status WriteQuantizedOnnx(const quant::QuantizedModel& model,
                                const Shape& input_shape,
                                const std::string& name,
                                const std::string& path) {
  if (absl::Status s = CheckReplaceable(path); !s.ok()) return s;
  absl::StatusOr<onnx::ModelProto> proto =
      ExportQuantizedOnnx(model, input_shape, name);
  if (!proto.ok()) return proto.status();
  return WriteModel(*proto, name, path);
}

}  // namespace dive::tools
