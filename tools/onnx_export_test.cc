#include "tools/onnx_export.h"

#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "autograd/functions.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nn/activation.h"
#include "nn/batch_norm.h"
#include "nn/conv2d.h"
#include "nn/dropout.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/pool.h"
#include "nn/sequential.h"
#include "tensor/file_io.h"
#include "tools/functional_module.h"

namespace dive::tools {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

std::shared_ptr<nn::Sequential> SmallNet() {
  return std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Module>>{
          std::make_shared<nn::Conv2d>(1, 4, 3, /*stride=*/2, /*padding=*/1),
          std::make_shared<nn::BatchNorm2d>(4), std::make_shared<nn::ReLU>(),
          std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Flatten>(),
          std::make_shared<nn::Dropout>(0.5f),
          std::make_shared<nn::Linear>(4 * 2 * 2, 10)});
}

std::vector<std::string> OpTypes(const onnx::GraphProto& graph) {
  std::vector<std::string> types;
  for (const onnx::NodeProto& node : graph.node()) {
    types.push_back(node.op_type());
  }
  return types;
}

const onnx::NodeProto& NodeOfType(const onnx::GraphProto& graph,
                                  const std::string& type) {
  for (const onnx::NodeProto& node : graph.node()) {
    if (node.op_type() == type) return node;
  }
  ADD_FAILURE() << "no " << type << " node";
  return graph.node(0);
}

std::vector<int64_t> Ints(const onnx::NodeProto& node,
                          const std::string& name) {
  for (const onnx::AttributeProto& a : node.attribute()) {
    if (a.name() == name) return {a.ints().begin(), a.ints().end()};
  }
  return {};
}

TEST(OnnxExportTest, GraphFollowsTheModel) {
  auto net = SmallNet();
  absl::StatusOr<onnx::ModelProto> model =
      ExportOnnx(*net, {2, 1, 8, 8}, "small");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->opset_import(0).version(), 13);
  const onnx::GraphProto& graph = model->graph();
  EXPECT_EQ(graph.name(), "small");
  EXPECT_THAT(OpTypes(graph), ElementsAre("Conv", "BatchNormalization", "Relu",
                                          "MaxPool", "Flatten", "Gemm"));
  const onnx::NodeProto& conv = NodeOfType(graph, "Conv");
  EXPECT_THAT(conv.input(), ElementsAre("input", "0.weight", "0.bias"));
  EXPECT_THAT(Ints(conv, "strides"), ElementsAre(2, 2));
  EXPECT_THAT(Ints(conv, "pads"), ElementsAre(1, 1, 1, 1));
  EXPECT_THAT(Ints(conv, "kernel_shape"), ElementsAre(3, 3));
  EXPECT_THAT(NodeOfType(graph, "BatchNormalization").input(),
              ElementsAre("Conv2d_0", "1.weight", "1.bias", "1.running_mean",
                          "1.running_var"));
  EXPECT_EQ(NodeOfType(graph, "Gemm").output(0), "output");
  // Only what the graph reads (not num_batches_tracked).
  std::vector<std::string> initializers;
  for (const onnx::TensorProto& t : graph.initializer()) {
    initializers.push_back(t.name());
  }
  EXPECT_THAT(initializers,
              UnorderedElementsAre("0.weight", "0.bias", "1.weight", "1.bias",
                                   "1.running_mean", "1.running_var",
                                   "6.weight", "6.bias"));
  // Dynamic batch on both ends.
  const auto& in = graph.input(0).type().tensor_type().shape();
  ASSERT_EQ(in.dim_size(), 4);
  EXPECT_EQ(in.dim(0).dim_param(), "N");
  EXPECT_EQ(in.dim(3).dim_value(), 8);
  const auto& out = graph.output(0).type().tensor_type().shape();
  ASSERT_EQ(out.dim_size(), 2);
  EXPECT_EQ(out.dim(0).dim_param(), "N");
  EXPECT_EQ(out.dim(1).dim_value(), 10);
}

TEST(OnnxExportTest, InitializersHoldTheWeights) {
  auto net = SmallNet();
  absl::StatusOr<onnx::ModelProto> model =
      ExportOnnx(*net, {1, 1, 8, 8}, "small");
  ASSERT_TRUE(model.ok()) << model.status();
  const Tensor w = net->StateDict().at("6.weight");
  for (const onnx::TensorProto& t : model->graph().initializer()) {
    if (t.name() != "6.weight") continue;
    EXPECT_THAT(std::vector<int64_t>(t.dims().begin(), t.dims().end()),
                ElementsAre(10, 16));
    ASSERT_EQ(t.raw_data().size(), 160 * sizeof(float));
    const float* data = reinterpret_cast<const float*>(t.raw_data().data());
    EXPECT_EQ(data[0], w.at<float>({0, 0}));
    EXPECT_EQ(data[159], w.at<float>({9, 15}));
    return;
  }
  FAIL() << "no 6.weight initializer";
}

TEST(OnnxExportTest, RestoresTrainingMode) {
  auto net = SmallNet();
  ASSERT_TRUE(ExportOnnx(*net, {1, 1, 8, 8}, "small").ok());
  EXPECT_TRUE(net->is_training());
  net->Eval();
  ASSERT_TRUE(ExportOnnx(*net, {1, 1, 8, 8}, "small").ok());
  EXPECT_FALSE(net->is_training());
}

TEST(OnnxExportTest, FunctionsAndConstants) {
  Functional net([](const autograd::Variable& x) {
    autograd::Variable y = autograd::Concat({Relu(x), Sigmoid(x) * 2.0f}, 1);
    y = y * autograd::Variable(Tensor::Full({4, 1, 1}, 3.0f)) + 1.0f;
    return Softmax(Flatten(GlobalAvgPool2d(y)), 1);
  });
  absl::StatusOr<onnx::ModelProto> model =
      ExportOnnx(net, {3, 2, 4, 4}, "functional");
  ASSERT_TRUE(model.ok()) << model.status();
  const onnx::GraphProto& graph = model->graph();
  EXPECT_THAT(OpTypes(graph),
              ElementsAre("Relu", "Sigmoid", "Mul", "Concat", "Mul", "Add",
                          "GlobalAveragePool", "Flatten", "Softmax"));
  // The scalars and the [4, 1, 1] tensor are constants.
  ASSERT_EQ(graph.initializer_size(), 3);
  EXPECT_THAT(graph.node(4).input(), ElementsAre("Concat_3", "constant_1"));
  EXPECT_THAT(std::vector<int64_t>(graph.initializer(1).dims().begin(),
                                   graph.initializer(1).dims().end()),
              ElementsAre(4, 1, 1));
}

TEST(OnnxExportTest, UnsupportedOpIsNamed) {
  Functional net([](const autograd::Variable& x) {
    return SoftmaxCrossEntropy(Flatten(x), Tensor::FromInt64Vector({0}, {1}));
  });
  absl::StatusOr<onnx::ModelProto> model = ExportOnnx(net, {1, 4}, "loss");
  EXPECT_EQ(model.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(model.status().message(), HasSubstr("SoftmaxCrossEntropy"));
}

TEST(OnnxExportTest, ReshapeAcrossTheBatchIsRejected) {
  Functional net([](const autograd::Variable& x) {
    return Reshape(x, {1, 12});
  });
  absl::StatusOr<onnx::ModelProto> model = ExportOnnx(net, {2, 6}, "merge");
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(),
              HasSubstr("does not keep the batch dimension"));
}

TEST(OnnxExportTest, IdentityModelHasAnIdentityNode) {
  Functional net([](const autograd::Variable& x) { return x; });
  absl::StatusOr<onnx::ModelProto> model = ExportOnnx(net, {1, 3}, "id");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT(OpTypes(model->graph()), ElementsAre("Identity"));
}

TEST(OnnxExportTest, WritesAFileTheProtobufReadsBack) {
  const std::string path = std::string(getenv("TEST_TMPDIR")) + "/small.onnx";
  auto net = SmallNet();
  ASSERT_TRUE(WriteOnnx(*net, {1, 1, 8, 8}, "small", path).ok());
  absl::StatusOr<std::string> bytes =
      ReadRegularFile(path, "onnx", 1 << 20, /*follow_symlink=*/false);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  onnx::ModelProto back;
  ASSERT_TRUE(back.ParseFromString(*bytes));
  EXPECT_EQ(back.graph().node_size(), 6);
}

TEST(OnnxExportTest, NeverWritesThroughASymlink) {
  const std::string dir = getenv("TEST_TMPDIR");
  const std::string target = dir + "/precious", link = dir + "/link.onnx";
  ASSERT_TRUE(WriteFileAtomically(target, "keep").ok());
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  auto net = SmallNet();
  const absl::Status s = WriteOnnx(*net, {1, 1, 8, 8}, "small", link);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*ReadRegularFile(target, "target", 100, false), "keep");
}

}  // namespace
}  // namespace dive::tools
