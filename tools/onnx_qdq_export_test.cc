// The QDQ graph of int8 zoo models (tools/onnx_export.h's
// ExportQuantizedOnnx): accepted by the ONNX checker (the exporter runs it),
// with the standard QDQ pattern around every Conv and Gemm and dive's own
// int8 weights, per-channel scales and int32 biases as initializers. ONNX
// Runtime's numbers are checked by //tools:onnx_qdq_parity_test.

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/zoo.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "quant/quantized_model.h"
#include "tensor/file_io.h"
#include "tensor/random.h"
#include "tools/functional_module.h"
#include "tools/onnx_export.h"

namespace dive::tools {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<quant::QuantizedModel> QuantizeZooModel(
    const std::string& name, int64_t size,
    const quant::QuantizeOptions& options = {}) {
  absl::StatusOr<models::ModelSpec> spec = models::FindModel(name);
  CHECK(spec.ok()) << spec.status();
  Generator gen(7);
  absl::StatusOr<std::shared_ptr<nn::Module>> net = spec->make(size);
  CHECK(net.ok()) << net.status();
  for (const auto& [param, v] : (*net)->NamedParameters()) {
    if (absl::EndsWith(param, "bias")) {
      Tensor(v.data()).CopyFrom(gen.Uniform(v.shape(), -0.01f, 0.01f));
    }
  }
  std::vector<Tensor> batches;
  for (int b = 0; b < 2; ++b) {
    batches.push_back(gen.Uniform({4, 1, size, size}, -1, 1));
  }
  absl::StatusOr<std::shared_ptr<quant::QuantizedModel>> q =
      quant::QuantizeModel(*net, batches, options);
  CHECK(q.ok()) << q.status();
  return *q;
}

// The graph's nodes by output, and its initializers by name.
struct Index {
  explicit Index(const onnx::GraphProto& graph) {
    for (const onnx::NodeProto& node : graph.node()) {
      for (const std::string& out : node.output()) producer[out] = &node;
    }
    for (const onnx::TensorProto& init : graph.initializer()) {
      initializer[init.name()] = &init;
    }
  }
  const onnx::NodeProto* Producer(const std::string& value) const {
    const auto it = producer.find(value);
    return it == producer.end() ? nullptr : it->second;
  }
  const onnx::TensorProto* Initializer(const std::string& name) const {
    const auto it = initializer.find(name);
    return it == initializer.end() ? nullptr : it->second;
  }
  std::map<std::string, const onnx::NodeProto*> producer;
  std::map<std::string, const onnx::TensorProto*> initializer;
};

int64_t IntAttribute(const onnx::NodeProto& node, const std::string& name,
                     int64_t missing) {
  for (const onnx::AttributeProto& a : node.attribute()) {
    if (a.name() == name) return a.i();
  }
  return missing;
}

// `value` is a DequantizeLinear along axis 0 of an initializer of type
// `type` [oc, ...] with float32 scales [oc] and zero points [oc] of `type`,
// all 0; returns the initializer (nullptr and a failure otherwise).
const onnx::TensorProto* PerChannelDequantized(const Index& index,
                                               const std::string& value,
                                               int type, int64_t oc) {
  const onnx::NodeProto* dq = index.Producer(value);
  if (dq == nullptr || dq->op_type() != "DequantizeLinear" ||
      dq->input_size() != 3) {
    ADD_FAILURE() << value << " is not a DequantizeLinear's output";
    return nullptr;
  }
  EXPECT_EQ(IntAttribute(*dq, "axis", 1), 0) << value;
  const onnx::TensorProto* x = index.Initializer(dq->input(0));
  const onnx::TensorProto* scale = index.Initializer(dq->input(1));
  const onnx::TensorProto* zp = index.Initializer(dq->input(2));
  if (x == nullptr || scale == nullptr || zp == nullptr) {
    ADD_FAILURE() << value << ": DequantizeLinear of non-initializers";
    return nullptr;
  }
  EXPECT_EQ(x->data_type(), type) << dq->input(0);
  EXPECT_EQ(x->dims(0), oc) << dq->input(0);
  EXPECT_EQ(scale->data_type(), onnx::TensorProto::FLOAT) << dq->input(1);
  EXPECT_EQ(scale->dims_size(), 1) << dq->input(1);
  EXPECT_EQ(scale->dims(0), oc) << dq->input(1);
  EXPECT_EQ(zp->data_type(), type) << dq->input(2);
  EXPECT_EQ(zp->dims(0), oc) << dq->input(2);
  EXPECT_EQ(zp->raw_data().find_first_not_of('\0'), std::string::npos)
      << dq->input(2) << ": zero points not all 0";
  return x;
}

float ScalarFloat(const onnx::TensorProto& t) {
  float v = 0;
  EXPECT_EQ(t.raw_data().size(), sizeof(v)) << t.name();
  std::memcpy(&v, t.raw_data().data(),
              std::min(sizeof(v), t.raw_data().size()));
  return v;
}

// `value` is a uint8 activation: DequantizeLinear of a QuantizeLinear with
// scalar scales and one uint8 zero point. The QuantizeLinear's scale is the
// DequantizeLinear's, or 1 after a uint8 pooling or ReLU (which run on the
// integers q - zero_point, as dive's kernels).
void ExpectUint8Activation(const Index& index, const std::string& value) {
  const onnx::NodeProto* dq = index.Producer(value);
  ASSERT_TRUE(dq != nullptr && dq->op_type() == "DequantizeLinear") << value;
  const onnx::NodeProto* q = index.Producer(dq->input(0));
  ASSERT_TRUE(q != nullptr && q->op_type() == "QuantizeLinear") << value;
  const onnx::TensorProto* q_scale = index.Initializer(q->input(1));
  const onnx::TensorProto* dq_scale = index.Initializer(dq->input(1));
  const onnx::TensorProto* q_zp = index.Initializer(q->input(2));
  const onnx::TensorProto* dq_zp = index.Initializer(dq->input(2));
  ASSERT_TRUE(q_scale && dq_scale && q_zp && dq_zp) << value;
  EXPECT_EQ(q_zp->data_type(), onnx::TensorProto::UINT8);
  EXPECT_EQ(q_zp->dims_size(), 0);
  EXPECT_EQ(q_zp->raw_data(), dq_zp->raw_data()) << value;
  EXPECT_EQ(dq_scale->dims_size(), 0);
  const float qs = ScalarFloat(*q_scale), dqs = ScalarFloat(*dq_scale);
  EXPECT_TRUE(qs == dqs || qs == 1.0f) << value << ": " << qs << ", " << dqs;
}

class QdqExportTest : public testing::TestWithParam<const char*> {};

TEST_P(QdqExportTest, ConvAndGemmAreInTheQdqPatternWithDivesNumbers) {
  const absl::StatusOr<models::ModelSpec> spec = models::FindModel(GetParam());
  ASSERT_TRUE(spec.ok());
  const int64_t size = spec->quick_input_size;
  std::shared_ptr<quant::QuantizedModel> q = QuantizeZooModel(GetParam(), size);
  absl::StatusOr<onnx::ModelProto> proto =
      ExportQuantizedOnnx(*q, {2, 1, size, size}, GetParam());
  ASSERT_TRUE(proto.ok()) << proto.status();
  const onnx::GraphProto& graph = proto->graph();
  const Index index(graph);
  const std::map<std::string, Tensor> state = q->QuantizedStateDict();

  int64_t int8_layers = 0;
  for (const quant::OpPlan& op : q->Ops()) {
    int8_layers += absl::StartsWith(op.how, "int8 conv") ||
                   absl::StartsWith(op.how, "int8 linear");
  }
  int64_t seen = 0, quantize = 0;
  for (const onnx::NodeProto& node : graph.node()) {
    quantize += node.op_type() == "QuantizeLinear";
    if (node.op_type() != "Conv" && node.op_type() != "Gemm") continue;
    ++seen;
    SCOPED_TRACE(node.name());
    ASSERT_EQ(node.input_size(), 3);
    ExpectUint8Activation(index, node.input(0));
    // Weights int8 per output channel, dive's values bit for bit.
    const std::string layer =
        node.input(1).substr(0, node.input(1).rfind(".weight"));
    const Tensor& w = state.at(layer + ".weight");
    const onnx::TensorProto* wi = PerChannelDequantized(
        index, node.input(1), onnx::TensorProto::INT8, w.dim(0));
    ASSERT_NE(wi, nullptr);
    EXPECT_EQ(wi->raw_data(),
              std::string(static_cast<const char*>(w.raw_data()), w.numel()));
    const onnx::TensorProto* ws =
        index.Initializer(index.Producer(node.input(1))->input(1));
    const Tensor& w_scale = state.at(layer + ".weight_scale");
    EXPECT_EQ(ws->raw_data(),
              std::string(static_cast<const char*>(w_scale.raw_data()),
                          4 * w_scale.numel()));
    // Bias int32 at input scale x weight scale.
    const Tensor& b = state.at(layer + ".bias");
    const onnx::TensorProto* bi = PerChannelDequantized(
        index, node.input(2), onnx::TensorProto::INT32, b.dim(0));
    ASSERT_NE(bi, nullptr);
    EXPECT_EQ(bi->raw_data(),
              std::string(static_cast<const char*>(b.raw_data()),
                          4 * b.numel()));
  }
  EXPECT_EQ(seen, int8_layers);
  EXPECT_GT(seen, 0);
  // The model's input (flattened first in the MLPs) is quantized before
  // the first int8 layer.
  for (const onnx::NodeProto& node : graph.node()) {
    if (node.op_type() == "Conv" || node.op_type() == "Gemm") {
      ADD_FAILURE() << node.name() << " before any QuantizeLinear";
      break;
    }
    if (node.op_type() == "QuantizeLinear") {
      const onnx::NodeProto* from = index.Producer(node.input(0));
      EXPECT_TRUE(node.input(0) == "input" ||
                  (from != nullptr && from->input(0) == "input"))
          << node.input(0);
      break;
    }
  }
  EXPECT_GT(quantize, seen / 2);
}

INSTANTIATE_TEST_SUITE_P(Chains, QdqExportTest,
                         testing::Values("softmax", "mlp", "mlp_dropout",
                                         "lenet", "bn_lenet", "alexnet", "vgg",
                                         "nin"));
INSTANTIATE_TEST_SUITE_P(Blocks, QdqExportTest,
                         testing::Values("resnet", "googlenet", "densenet"));

std::vector<const onnx::NodeProto*> NodesOfType(const onnx::GraphProto& graph,
                                                const std::string& type) {
  std::vector<const onnx::NodeProto*> out;
  for (const onnx::NodeProto& node : graph.node()) {
    if (node.op_type() == type) out.push_back(&node);
  }
  return out;
}

// The node that reads `value` first.
const onnx::NodeProto* Consumer(const onnx::GraphProto& graph,
                                const std::string& value) {
  for (const onnx::NodeProto& node : graph.node()) {
    for (const std::string& in : node.input()) {
      if (in == value) return &node;
    }
  }
  return nullptr;
}

TEST(QdqExportTest, ResidualAddTakesUint8PartsAndGivesUint8) {
  std::shared_ptr<quant::QuantizedModel> q = QuantizeZooModel("resnet", 64);
  absl::StatusOr<onnx::ModelProto> proto =
      ExportQuantizedOnnx(*q, {1, 1, 64, 64}, "resnet");
  ASSERT_TRUE(proto.ok()) << proto.status();
  const onnx::GraphProto& graph = proto->graph();
  const Index index(graph);
  const std::vector<const onnx::NodeProto*> adds = NodesOfType(graph, "Add");
  EXPECT_EQ(adds.size(), 8u);  // ResNet-18's residual blocks
  for (const onnx::NodeProto* add : adds) {
    SCOPED_TRACE(add->output(0));
    ExpectUint8Activation(index, add->input(0));
    ExpectUint8Activation(index, add->input(1));
    const onnx::NodeProto* relu = Consumer(graph, add->output(0));
    ASSERT_NE(relu, nullptr);
    EXPECT_EQ(relu->op_type(), "Relu");
    const onnx::NodeProto* quantize = Consumer(graph, relu->output(0));
    ASSERT_NE(quantize, nullptr);
    EXPECT_EQ(quantize->op_type(), "QuantizeLinear");
  }
}

TEST(QdqExportTest, ConcatenationsAndTableBatchNormsAreBetweenQdq) {
  for (const char* name : {"googlenet", "densenet"}) {
    SCOPED_TRACE(name);
    std::shared_ptr<quant::QuantizedModel> q = QuantizeZooModel(name, 64);
    absl::StatusOr<onnx::ModelProto> proto =
        ExportQuantizedOnnx(*q, {1, 1, 64, 64}, name);
    ASSERT_TRUE(proto.ok()) << proto.status();
    const onnx::GraphProto& graph = proto->graph();
    const Index index(graph);
    const std::vector<const onnx::NodeProto*> concats =
        NodesOfType(graph, "Concat");
    EXPECT_FALSE(concats.empty());
    for (const onnx::NodeProto* concat : concats) {
      for (const std::string& in : concat->input()) {
        ExpectUint8Activation(index, in);
      }
      const onnx::NodeProto* quantize = Consumer(graph, concat->output(0));
      ASSERT_NE(quantize, nullptr);
      EXPECT_EQ(quantize->op_type(), "QuantizeLinear");
    }
    // DenseNet's BatchNorms before a convolution: float32
    // BatchNormalization on a uint8 activation.
    const std::vector<const onnx::NodeProto*> bns =
        NodesOfType(graph, "BatchNormalization");
    if (std::string(name) == "densenet") {
      EXPECT_FALSE(bns.empty());
      // Its uint8 average pools run on q - zero_point from Cast and Sub
      // (not a DequantizeLinear ONNX Runtime would fuse into its
      // QLinearAveragePool, which rounds ties otherwise), then
      // QuantizeLinear in scale 1.
      std::vector<const onnx::NodeProto*> pools =
          NodesOfType(graph, "AveragePool");
      for (const onnx::NodeProto* p : NodesOfType(graph, "GlobalAveragePool")) {
        pools.push_back(p);
      }
      EXPECT_EQ(pools.size(), 4u);  // 3 transitions, the global one
      for (const onnx::NodeProto* pool : pools) {
        const onnx::NodeProto* sub = index.Producer(pool->input(0));
        ASSERT_TRUE(sub != nullptr && sub->op_type() == "Sub");
        const onnx::NodeProto* cast = index.Producer(sub->input(0));
        ASSERT_TRUE(cast != nullptr && cast->op_type() == "Cast");
        const onnx::NodeProto* quantize = Consumer(graph, pool->output(0));
        ASSERT_TRUE(quantize != nullptr &&
                    quantize->op_type() == "QuantizeLinear");
        EXPECT_EQ(ScalarFloat(*index.Initializer(quantize->input(1))), 1.0f);
      }
    }
    for (const onnx::NodeProto* bn : bns) {
      ExpectUint8Activation(index, bn->input(0));
    }
  }
}

TEST(QdqExportTest, FloatFallbacksStayFloat) {
  // LeNet's sigmoids have no int8 kernel: Sigmoid on a Conv's float32
  // output, no QuantizeLinear between them.
  std::shared_ptr<quant::QuantizedModel> q = QuantizeZooModel("lenet", 28);
  absl::StatusOr<onnx::ModelProto> proto =
      ExportQuantizedOnnx(*q, {1, 1, 28, 28}, "lenet");
  ASSERT_TRUE(proto.ok()) << proto.status();
  const onnx::GraphProto& graph = proto->graph();
  const Index index(graph);
  const std::vector<const onnx::NodeProto*> sigmoids =
      NodesOfType(graph, "Sigmoid");
  ASSERT_FALSE(sigmoids.empty());
  for (const onnx::NodeProto* sigmoid : sigmoids) {
    const onnx::NodeProto* from = index.Producer(sigmoid->input(0));
    ASSERT_NE(from, nullptr);
    EXPECT_NE(from->op_type(), "DequantizeLinear");
  }
}

TEST(QdqExportTest, WritesAFileAndNeverThroughASymlink) {
  const std::string dir = getenv("TEST_TMPDIR");
  std::shared_ptr<quant::QuantizedModel> q = QuantizeZooModel("mlp", 28);
  const std::string path = dir + "/mlp.onnx";
  ASSERT_TRUE(WriteQuantizedOnnx(*q, {1, 1, 28, 28}, "mlp", path).ok());
  absl::StatusOr<std::string> bytes =
      ReadRegularFile(path, "onnx", 1 << 24, /*follow_symlink=*/false);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  onnx::ModelProto back;
  ASSERT_TRUE(back.ParseFromString(*bytes));
  EXPECT_GT(back.graph().node_size(), 0);

  const std::string target = dir + "/precious", link = dir + "/link.onnx";
  ASSERT_TRUE(WriteFileAtomically(target, "keep").ok());
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  const absl::Status s = WriteQuantizedOnnx(*q, {1, 1, 28, 28}, "mlp", link);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*ReadRegularFile(target, "target", 100, false), "keep");
}

// A float32 fallback of the int8 plan that ONNX cannot express.
TEST(QdqExportTest, AFallbackOnnxCannotExpressIsNamed) {
  auto net = std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Module>>{
          std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(16, 4),
          std::make_shared<Functional>([](const autograd::Variable& x) {
            return autograd::SoftmaxCrossEntropy(
                x, Tensor::FromInt64Vector({0}, {1}));
          })});
  Generator gen(3);
  absl::StatusOr<std::shared_ptr<quant::QuantizedModel>> q =
      quant::QuantizeModel(net, {gen.Uniform({1, 1, 4, 4}, -1, 1)}, {});
  ASSERT_TRUE(q.ok()) << q.status();
  const absl::Status s =
      ExportQuantizedOnnx(**q, {1, 1, 4, 4}, "loss").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(s.message(), HasSubstr("QDQ ONNX export of 2 (Functional)"));
  EXPECT_THAT(s.message(), HasSubstr("SoftmaxCrossEntropy"));
}

// A reduce_range model's activations end at 127, QuantizeLinear's at 255:
// each QuantizeLinear of an activation's own QParams reads a Clip at
// (127 - zero_point) x scale; one in scale 1 (the integers of a pooling,
// already at most 127) reads none, and a model without reduce_range has no
// Clip. ONNX Runtime's numbers: //tools:onnx_qdq_reduce_range_parity_test.
TEST(QdqExportTest, ReduceRangeClipsBeforeEachQuantizeLinear) {
  for (bool reduce_range : {false, true}) {
    SCOPED_TRACE(reduce_range ? "reduce_range" : "0..255");
    std::shared_ptr<quant::QuantizedModel> q =
        QuantizeZooModel("resnet", 32, {.reduce_range = reduce_range});
    absl::StatusOr<onnx::ModelProto> proto =
        ExportQuantizedOnnx(*q, {1, 1, 32, 32}, "resnet");
    ASSERT_TRUE(proto.ok()) << proto.status();
    const Index index(proto->graph());
    int clipped = 0, clips = 0;
    for (const onnx::NodeProto& node : proto->graph().node()) {
      clips += node.op_type() == "Clip";
      if (node.op_type() != "QuantizeLinear") continue;
      const float scale = ScalarFloat(*index.Initializer(node.input(1)));
      const onnx::TensorProto* zp = index.Initializer(node.input(2));
      ASSERT_NE(zp, nullptr);
      const int zero_point = static_cast<uint8_t>(zp->raw_data()[0]);
      const onnx::NodeProto* clip = index.Producer(node.input(0));
      const bool has_clip = clip != nullptr && clip->op_type() == "Clip";
      EXPECT_EQ(has_clip, reduce_range && scale != 1.0f) << node.name();
      if (!has_clip) continue;
      ++clipped;
      ASSERT_EQ(clip->input_size(), 3);
      EXPECT_EQ(clip->input(1), "");  // QuantizeLinear's own floor, 0
      EXPECT_EQ(ScalarFloat(*index.Initializer(clip->input(2))),
                static_cast<float>(127 - zero_point) * scale);
    }
    EXPECT_EQ(clips, clipped);
    EXPECT_EQ(clipped > 0, reduce_range);
  }
}

TEST(QdqExportTest, InputShapeNeedsABatch) {
  std::shared_ptr<quant::QuantizedModel> q = QuantizeZooModel("softmax", 28);
  EXPECT_EQ(ExportQuantizedOnnx(*q, {}, "softmax").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dive::tools
