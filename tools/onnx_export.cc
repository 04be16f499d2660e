#include "tools/onnx_export.h"

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "autograd/trace.h"
#include "autograd/variable.h"
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
  void AddInitializer(const Tensor& t, const std::string& name) {
    CHECK(t.dtype() == DType::kFloat32)
        << "ONNX export: " << name << " is not float32";
    const Tensor c = t.Contiguous();
    onnx::TensorProto* init = graph_->add_initializer();
    init->set_name(name);
    init->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : c.shape().dims()) init->add_dims(d);
    init->set_raw_data(c.data(), c.numel() * sizeof(float));  // little endian
  }

  onnx::GraphProto* graph_;
  std::vector<std::pair<std::string, Tensor>> state_;
  std::vector<Value> values_;
  int constants_ = 0;
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

  onnx::ModelProto proto;
  proto.set_ir_version(kIrVersion);
  proto.set_producer_name("dive");
  proto.add_opset_import()->set_version(kOpsetVersion);
  onnx::GraphProto* graph = proto.mutable_graph();
  graph->set_name(name);
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

  try {
    onnx::checker::check_model(proto);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("ONNX export: the ONNX checker rejects the graph of ",
                     name, ": ", e.what()));
  }
  return proto;
}

absl::Status WriteOnnx(nn::Module& model, const Shape& input_shape,
                       const std::string& name, const std::string& path) {
  if (absl::Status s = CheckReplaceable(path); !s.ok()) return s;
  absl::StatusOr<onnx::ModelProto> proto = ExportOnnx(model, input_shape, name);
  if (!proto.ok()) return proto.status();
  std::string bytes;
  if (!proto->SerializeToString(&bytes)) {
    return absl::InternalError(absl::StrCat("ONNX export: cannot serialize ",
                                            name, " (over protobuf's 2 GiB?)"));
  }
  return WriteFileAtomically(path, bytes);
}

}  // namespace dive::tools
