#include "quant/quantized_model.h"

#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "autograd/variable.h"
#include "glog/logging.h"
#include "gtest/gtest.h"
#include "models/zoo.h"
#include "nn/activation.h"
#include "nn/batch_norm.h"
#include "nn/conv2d.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/pool.h"
#include "nn/sequential.h"
#include "quant/qparams.h"
#include "tensor/ops.h"
#include "tensor/qconv.h"
#include "tensor/qgemm.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"

namespace dive::quant {
namespace {

using autograd::Variable;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

Tensor Logits(nn::Module& m, const Tensor& x) {
  autograd::NoGradGuard no_grad;
  return m(Variable(x)).data();
}

// x [N, K] minus its mean over the batch: what depends on the input (a
// random network's logits are mostly their biases).
Tensor Centered(const Tensor& x) {
  Tensor out = x.Clone();
  for (int64_t k = 0; k < x.dim(1); ++k) {
    double mean = 0;
    for (int64_t n = 0; n < x.dim(0); ++n) mean += x.at<float>({n, k});
    mean /= x.dim(0);
    for (int64_t n = 0; n < x.dim(0); ++n) {
      out.data()[n * x.dim(1) + k] -= static_cast<float>(mean);
    }
  }
  return out;
}

// ||a - b|| / ||b||.
double RelativeError(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    num += std::pow(a.data()[i] - b.data()[i], 2);
    den += std::pow(b.data()[i], 2);
  }
  return std::sqrt(num / den);
}

struct Quantized {
  std::shared_ptr<nn::Module> float_model;
  std::shared_ptr<QuantizedModel> int8;
  Tensor x;  // a test batch, not among the calibration batches
};

Quantized QuantizeZooModel(const std::string& name, int64_t size,
                           Calibration calibration = Calibration::kMinMax,
                           bool reduce_range = false,
                           std::optional<QGemmPath> path = std::nullopt) {
  absl::StatusOr<models::ModelSpec> spec = models::FindModel(name);
  CHECK(spec.ok()) << spec.status();
  Generator gen(7);
  absl::StatusOr<std::shared_ptr<nn::Module>> net = spec->make(size);
  CHECK(net.ok()) << net.status();
  // The zoo initializes biases to 0; trained ones are not, and the int8
  // bias path must be exercised (small: large ones would drown the input's
  // signal, above).
  for (const auto& [param, v] : (*net)->NamedParameters()) {
    if (absl::EndsWith(param, "bias")) {
      Tensor(v.data()).CopyFrom(gen.Uniform(v.shape(), -0.01f, 0.01f));
    }
  }
  // Images normalized to [-1, 1]: the input's zero point is not 0.
  std::vector<Tensor> batches;
  for (int b = 0; b < 3; ++b)
    batches.push_back(gen.Uniform({8, 1, size, size}, -1, 1));
  QuantizeOptions options;
  options.calibration = calibration;
  options.reduce_range = reduce_range;
  options.path = path;
  absl::StatusOr<std::shared_ptr<QuantizedModel>> q =
      QuantizeModel(*net, batches, options);
  CHECK(q.ok()) << q.status();
  return {*net, *q, gen.Uniform({16, 1, size, size}, -1, 1)};
}

// Each int8 layer adds a rounding error of at most half a step of its
// input's, its weights' and its output's scale: relative to the ranges,
// 1/510 of the activations' (uint8) and 1/254 of each channel's largest
// weight (int8). Through a model of 1 to 11 int8 layers the logits'
// relative error stays within about 1.5% (measured on these random
// networks: 0.2-1.5%); the bound is 5%.
//
// A random network's logits hardly depend on its input, though (the
// signal shrinks layer by layer; the biases stay), so the logits alone
// would miss an error in the input's path: the input-dependent part (the
// logits minus their batch mean) is held to 30% too (measured: 1-17%;
// with the convolution's input zero point dropped, 94-126%). The sigmoid
// LeNets are exempt: their random logits vary with the input by less than
// one int8 step (their input-dependent part's error is ~300% whatever the
// kernels do), the book's slow start; the trained LeNet's accuracy is
// checked end to end instead (//tools:trainer_binary_test runs it).
//
// ResNet-18, GoogLeNet and DenseNet add roundings of their own: the add
// requantizes both parts (half a step of each, and of its output), the
// concatenation's paths write in one scale, the widest path's (a narrow
// path keeps fewer steps), and DenseNet quantizes again before each
// convolution after its float32 BatchNorm, 20 int8 layers deep on
// GoogLeNet's longest path. Their logits stay within 1-4% too (the 5%
// bound), their input-dependent part within 10-40% (measured; the bound is
// 50%): an add or a concatenation that takes a part in the wrong scale
// gives 90-100%.
constexpr double kMaxRelativeError = 0.05;
constexpr double kMaxCenteredError = 0.3;
constexpr double kMaxCenteredErrorOfBlocks = 0.5;

class ZooModelTest : public testing::TestWithParam<const char*> {};

TEST_P(ZooModelTest, Int8LogitsAreCloseToFloat32AndTopOneAgrees) {
  absl::StatusOr<models::ModelSpec> spec = models::FindModel(GetParam());
  ASSERT_TRUE(spec.ok());
  for (Calibration c : {Calibration::kMinMax, Calibration::kPercentile}) {
    SCOPED_TRACE(CalibrationName(c));
    Quantized q = QuantizeZooModel(GetParam(), spec->quick_input_size, c);
    const Tensor ref = Logits(*q.float_model, q.x);
    const Tensor got = Logits(*q.int8, q.x);
    ASSERT_EQ(got.shape(), ref.shape());
    const double err = RelativeError(got, ref);
    const double centered = RelativeError(Centered(got), Centered(ref));
    std::printf(
        "%s %s: relative error of the logits %.4f, of their "
        "input-dependent part %.4f\n",
        GetParam(), CalibrationName(c), err, centered);
    EXPECT_LT(err, kMaxRelativeError);
    const std::string name = GetParam();
    if (name == "resnet" || name == "googlenet" || name == "densenet") {
      EXPECT_LT(centered, kMaxCenteredErrorOfBlocks);
    } else if (name != "lenet" && name != "bn_lenet") {
      EXPECT_LT(centered, kMaxCenteredError);
    }
    // Top-1 agrees wherever the float model's margin between its first and
    // second class is larger than twice the largest logit error.
    double max_diff = 0;
    for (int64_t i = 0; i < ref.numel(); ++i) {
      max_diff =
          std::max<double>(max_diff, std::fabs(got.data()[i] - ref.data()[i]));
    }
    const Tensor ref_top = ops::Argmax(ref, 1), got_top = ops::Argmax(got, 1);
    int64_t agree = 0;
    for (int64_t n = 0; n < ref.dim(0); ++n) {
      agree += ref_top.data<int64_t>()[n] == got_top.data<int64_t>()[n];
      std::vector<float> row(ref.data() + n * ref.dim(1),
                             ref.data() + (n + 1) * ref.dim(1));
      std::sort(row.rbegin(), row.rend());
      if (row[0] - row[1] > 2 * max_diff) {
        EXPECT_EQ(ref_top.data<int64_t>()[n], got_top.data<int64_t>()[n])
            << "example " << n;
      }
    }
    std::printf("%s %s: top-1 agrees on %ld of %ld\n", GetParam(),
                CalibrationName(c), agree, ref.dim(0));
    // And on most of the batch (measured: 13 to 16 of 16; random networks'
    // top two logits are often close).
    EXPECT_GT(agree, ref.dim(0) / 2);
  }
}

INSTANTIATE_TEST_SUITE_P(Sequential, ZooModelTest,
                         testing::Values("softmax", "mlp", "lenet", "bn_lenet",
                                         "alexnet", "vgg", "nin"));
// Blocks with a data flow of their own: ResNet's residual add, GoogLeNet's
// and DenseNet's concatenations, in int8.
INSTANTIATE_TEST_SUITE_P(Blocks, ZooModelTest,
                         testing::Values("resnet", "googlenet", "densenet"));

// The int8 convolutions on oneDNN (tensor/qconv_onednn.h: its int32 sums,
// then dive's requantization) give the logits of dive's kernels bit for
// bit: where kAuto picks it (ResNet-18's 3x3 layers of 128 channels and
// more, AlexNet's 5x5 and 3x3 layers) and on every convolution (kOneDnn).
TEST(QuantizeModel, OneDnnConvolutionsGiveDivesLogits) {
  if (absl::Status s = QGemmPathSupported(QGemmPath::kAvx512Vnni); !s.ok()) {
    GTEST_SKIP() << "skipped: oneDNN's int8 convolution runs only on "
                    "AVX512-VNNI, and this CPU lacks it ("
                 << s.message() << ")";
  }
  for (const auto& [name, size] : std::vector<std::pair<const char*, int64_t>>{
           {"alexnet", 96}, {"resnet", 32}}) {
    SCOPED_TRACE(name);
    Quantized q = QuantizeZooModel(name, size);
    SetQConvLibrary(QConvLibrary::kDive);
    const Tensor dive = Logits(*q.int8, q.x);
    for (QConvLibrary library : {QConvLibrary::kAuto, QConvLibrary::kOneDnn}) {
      SetQConvLibrary(library);
      const Tensor got = Logits(*q.int8, q.x);
      ASSERT_EQ(got.shape(), dive.shape());
      for (int64_t i = 0; i < dive.numel(); ++i) {
        ASSERT_EQ(got.data()[i], dive.data()[i])
            << "library " << static_cast<int>(library) << " at " << i;
      }
    }
    SetQConvLibrary(QConvLibrary::kAuto);
  }
}

TEST(QuantizeModel, ListsWhatRunsInInt8) {
  Quantized q = QuantizeZooModel("lenet", 28);
  const std::vector<OpPlan> ops = q.int8->Ops();
  ASSERT_EQ(ops.size(), 12u);  // LeNet's 12 layers; no ReLU to fuse
  EXPECT_EQ(ops[0].name, "0");
  EXPECT_TRUE(ops[0].int8);
  EXPECT_EQ(ops[0].how, "int8 conv (float32 input quantized), float32 out");
  EXPECT_FALSE(ops[1].int8);  // Sigmoid
  EXPECT_EQ(ops[1].how, "float32 fallback: no int8 kernel");
  EXPECT_FALSE(ops[2].int8);  // AvgPool2d after a Sigmoid: float32
  EXPECT_TRUE(ops[3].int8);
  EXPECT_EQ(q.int8->Describe(), "QuantizedModel(int8: 5 of 12 layers)");

  Quantized alex = QuantizeZooModel("alexnet", 96);
  const std::vector<OpPlan> a = alex.int8->Ops();
  EXPECT_EQ(a[0].how,
            "int8 conv (float32 input quantized), ReLU fused, "
            "uint8 out");
  EXPECT_EQ(a[1].describe, "MaxPool2d(kernel=3x3, stride=2, padding=0)");
  EXPECT_EQ(a[1].how, "uint8");
  for (const OpPlan& op : a) EXPECT_TRUE(op.int8) << op.name << " " << op.how;
}

// The op of the plan named `name`.
OpPlan Op(const std::vector<OpPlan>& ops, const std::string& name) {
  for (const OpPlan& op : ops) {
    if (op.name == name) return op;
  }
  ADD_FAILURE() << "no op " << name;
  return {};
}

TEST(QuantizeModel, ListsTheAddsAndConcatenationsAsInt8) {
  Quantized resnet = QuantizeZooModel("resnet", 32);
  const std::vector<OpPlan> r = resnet.int8->Ops();
  // b2's first Residual: conv1 (bn1 and its ReLU folded), conv2 (bn2
  // folded; the ReLU comes after the add), no shortcut convolution.
  EXPECT_EQ(Op(r, "1.0.conv1").how,
            "int8 conv, BatchNorm2d folded, ReLU fused, uint8 out");
  EXPECT_EQ(Op(r, "1.0.conv2").how, "int8 conv, BatchNorm2d folded, uint8 out");
  EXPECT_EQ(Op(r, "1.0").describe,
            "Residual(64, 64, use_1x1conv=false, strides=1)");
  EXPECT_TRUE(Op(r, "1.0").int8);
  EXPECT_EQ(Op(r, "1.0").how,
            "int8 add, both parts requantized, ReLU fused, uint8 out");
  EXPECT_EQ(Op(r, "2.0.conv3").how, "int8 conv, uint8 out");
  // The stem's BatchNorm is folded; nothing falls back to float32.
  for (const OpPlan& op : r) EXPECT_TRUE(op.int8) << op.name << " " << op.how;
  EXPECT_EQ(resnet.int8->Describe(), "QuantizedModel(int8: 32 of 32 layers)");

  Quantized googlenet = QuantizeZooModel("googlenet", 32);
  const std::vector<OpPlan> g = googlenet.int8->Ops();
  EXPECT_EQ(Op(g, "2.0").how,
            "int8 concat of 4 parts (4 written in its scale, 0 requantized), "
            "uint8 out");
  EXPECT_EQ(Op(g, "2.0.p2_2").how,
            "int8 conv, ReLU fused, uint8 out (its concatenation's scale)");
  EXPECT_EQ(Op(g, "2.0.p4_1").how, "uint8");
  for (const OpPlan& op : g) EXPECT_TRUE(op.int8) << op.name << " " << op.how;

  Quantized densenet = QuantizeZooModel("densenet", 32);
  const std::vector<OpPlan> d = densenet.int8->Ops();
  // A ConvBlock: BatchNorm (before the convolution: not foldable) with its
  // ReLU as a table per channel on uint8, the convolution in int8 into the
  // concatenation's scale; the block's input is requantized to it.
  EXPECT_EQ(Op(d, "1.net.0.0").how,
            "uint8 BatchNorm2d (a table per channel), ReLU fused, uint8 out");
  EXPECT_EQ(Op(d, "1.net.0.2").how,
            "int8 conv, uint8 out (its concatenation's scale)");
  EXPECT_EQ(Op(d, "1.net.0").how,
            "int8 concat of 2 parts (1 written in its scale, 1 requantized), "
            "uint8 out");
  EXPECT_TRUE(Op(d, "1.net.3").int8);
  EXPECT_EQ(Op(d, "2.3").how, "uint8");  // the transition's AvgPool2d
  for (const OpPlan& op : d) EXPECT_TRUE(op.int8) << op.name << " " << op.how;
}

// A BatchNorm2d that follows no convolution, on uint8: each channel's 256
// outputs, exact for its uint8 input values (the float32 BatchNorm of the
// dequantized input, quantized).
TEST(QuantizeModel, BatchNormWithoutAConvolutionIsATablePerChannel) {
  Generator gen(5);
  auto bn = std::make_shared<nn::BatchNorm2d>(3);
  const std::pair<Tensor, Tensor> values[] = {
      {bn->weight().data(), gen.Uniform({3}, 0.5f, 2)},
      {bn->bias().data(), gen.Normal({3}, 0, 1)},
      {bn->running_mean(), gen.Normal({3}, 0, 0.5f)},
      {bn->running_var(), gen.Uniform({3}, 0.1f, 3)}};
  for (const auto& [handle, value] : values) Tensor(handle).CopyFrom(value);
  auto net = std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Module>>{
          bn, std::make_shared<nn::ReLU>(), std::make_shared<nn::Flatten>(),
          std::make_shared<nn::Linear>(3 * 4 * 4, 5)});
  const Tensor x = gen.Uniform({6, 3, 4, 4}, -1, 1);
  absl::StatusOr<std::shared_ptr<QuantizedModel>> q =
      QuantizeModel(net, {x}, {});
  ASSERT_TRUE(q.ok()) << q.status();
  const std::vector<OpPlan> ops = (*q)->Ops();
  ASSERT_EQ(ops.size(), 3u);
  EXPECT_EQ(ops[0].how,
            "uint8 BatchNorm2d (a table per channel) (float32 input "
            "quantized), ReLU fused, uint8 out");
  const std::map<std::string, Tensor> state = (*q)->QuantizedStateDict();
  EXPECT_EQ(state.count("0.running_var"), 1u);
  EXPECT_EQ(state.count("0.input_scale"), 1u);
  EXPECT_EQ(state.count("0.output_zero_point"), 1u);
  EXPECT_LT(RelativeError(Logits(**q, x), Logits(*net, x)), 0.02);
}

// A block the plan does not know.
class TwoPaths : public nn::Module {
 public:
  TwoPaths() {
    a_ = RegisterModule("a", std::make_shared<nn::Linear>(4, 4));
    b_ = RegisterModule("b", std::make_shared<nn::Linear>(4, 4));
  }
  autograd::Variable Forward(const autograd::Variable& x) override {
    return (*a_)(x) + (*b_)(x);
  }
  std::string Describe() const override { return "TwoPaths"; }

 private:
  std::shared_ptr<nn::Linear> a_, b_;
};

TEST(QuantizeModel, UnknownBlocksAreUnimplemented) {
  auto net = std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Module>>{
          std::make_shared<nn::Linear>(3, 4), std::make_shared<TwoPaths>()});
  const absl::StatusOr<std::shared_ptr<QuantizedModel>> q =
      QuantizeModel(net, {Tensor::Zeros({2, 3})}, {});
  ASSERT_EQ(q.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(q.status().message().find("block \"1\" (TwoPaths)"),
            std::string::npos)
      << q.status();
  const absl::StatusOr<std::shared_ptr<QuantizedModel>> none =
      QuantizeModel(std::make_shared<nn::Sequential>(), {}, {});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
}

// Conv2d + BatchNorm2d (trained statistics) + ReLU: the BatchNorm is folded
// into the int8 convolution, and the result matches the unfused float
// model's.
TEST(QuantizeModel, FoldsBatchNormIntoTheConvolution) {
  Generator gen(11);
  auto conv = std::make_shared<nn::Conv2d>(3, 8, 3, 1, 1);
  auto bn = std::make_shared<nn::BatchNorm2d>(8);
  // Handles sharing the BatchNorm's storage, and their new values.
  const std::pair<Tensor, Tensor> values[] = {
      {bn->weight().data(), gen.Uniform({8}, 0.5f, 2)},
      {bn->bias().data(), gen.Normal({8}, 0, 1)},
      {bn->running_mean(), gen.Normal({8}, 0, 0.5f)},
      {bn->running_var(), gen.Uniform({8}, 0.1f, 3)}};
  for (const auto& [handle, value] : values) Tensor(handle).CopyFrom(value);
  auto net = std::make_shared<nn::Sequential>(
      std::initializer_list<std::shared_ptr<nn::Module>>{
          conv, bn, std::make_shared<nn::ReLU>(),
          std::make_shared<nn::Flatten>(),
          std::make_shared<nn::Linear>(8 * 6 * 6, 5)});
  net->Eval();
  const Tensor x = gen.Uniform({4, 3, 6, 6}, -1, 1);
  const Tensor unfused = Logits(*net, x);  // BatchNorm as its own layer

  absl::StatusOr<std::shared_ptr<QuantizedModel>> q =
      QuantizeModel(net, {gen.Uniform({8, 3, 6, 6}, -1, 1), x}, {});
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_TRUE(conv->FoldsBatchNorm());
  // Folding itself is exact within float rounding...
  EXPECT_LT(RelativeError(Logits(*net, x), unfused), 1e-5);
  // ...and the int8 model runs the folded convolution (3 layers, the
  // BatchNorm and the ReLU in the first).
  const std::vector<OpPlan> ops = (*q)->Ops();
  ASSERT_EQ(ops.size(), 3u);
  EXPECT_EQ(ops[0].how,
            "int8 conv (float32 input quantized), BatchNorm2d folded, ReLU "
            "fused, uint8 out");
  EXPECT_LT(RelativeError(Logits(**q, x), unfused), 0.02);
  EXPECT_EQ((*q)->QuantizedStateDict().count("1.running_mean"), 0u);
}

// ---- The quantized checkpoint ----------------------------------------------

TEST(QuantizedCheckpoint, RoundTripsBitForBit) {
  Quantized q = QuantizeZooModel("lenet", 28, Calibration::kPercentile);
  const std::string path = TempPath("lenet_int8.safetensors");
  ASSERT_TRUE(SaveQuantizedModel(*q.int8, "lenet", 28,
                                 {{"dive.calibration", "percentile"}}, path)
                  .ok());
  absl::StatusOr<LoadedQuantizedModel> back = LoadQuantizedModel(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->name, "lenet");
  EXPECT_EQ(back->input_size, 28);
  const Tensor a = Logits(*q.int8, q.x), b = Logits(*back->model, q.x);
  EXPECT_EQ(a.ToVector(), b.ToVector());
  absl::StatusOr<SafetensorsFile> file = LoadSafetensors(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->metadata.at("dive.quantization"), "int8");
  EXPECT_EQ(file->tensors.at("0.weight").dtype(), DType::kInt8);
  EXPECT_EQ(file->tensors.at("0.bias").dtype(), DType::kInt32);
  EXPECT_EQ(file->tensors.at("0.weight_scale").shape(), Shape({6}));
  EXPECT_EQ(file->tensors.at("0.input_zero_point").dtype(), DType::kInt32);
}

// ResNet's, GoogLeNet's and DenseNet's: the blocks' QParams under their
// names, the float32 BatchNorms of DenseNet under theirs.
TEST(QuantizedCheckpoint, BlocksRoundTripBitForBit) {
  for (const char* name : {"resnet", "googlenet", "densenet"}) {
    SCOPED_TRACE(name);
    Quantized q = QuantizeZooModel(name, 32);
    const std::string path = TempPath(absl::StrCat(name, "_int8.safetensors"));
    ASSERT_TRUE(SaveQuantizedModel(*q.int8, name, 32, {}, path).ok());
    absl::StatusOr<LoadedQuantizedModel> back = LoadQuantizedModel(path);
    ASSERT_TRUE(back.ok()) << back.status();
    const Tensor a = Logits(*q.int8, q.x), b = Logits(*back->model, q.x);
    EXPECT_EQ(a.ToVector(), b.ToVector());
    const std::map<std::string, Tensor> state =
        back->model->QuantizedStateDict();
    const std::map<std::string, Tensor> saved = q.int8->QuantizedStateDict();
    ASSERT_EQ(state.size(), saved.size());
    for (const auto& [key, t] : saved) {
      ASSERT_EQ(state.count(key), 1u) << key;
      EXPECT_EQ(state.at(key).dtype(), t.dtype()) << key;
      EXPECT_EQ(state.at(key).shape(), t.shape()) << key;
    }
  }
  absl::StatusOr<SafetensorsFile> r =
      LoadSafetensors(TempPath("resnet_int8.safetensors"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tensors.count("1.0.output_scale"), 1u);
  EXPECT_EQ(r->tensors.count("1.0.conv2.output_zero_point"), 1u);
  EXPECT_EQ(r->tensors.at("2.0.conv3.weight").dtype(), DType::kInt8);
  EXPECT_EQ(r->tensors.count("1.0.bn1.running_mean"), 0u);  // folded
  absl::StatusOr<SafetensorsFile> g =
      LoadSafetensors(TempPath("googlenet_int8.safetensors"));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->tensors.count("2.0.output_scale"), 1u);
  // Written in the concatenation's scale: not saved twice.
  EXPECT_EQ(g->tensors.count("2.0.p1_1.output_scale"), 0u);
  absl::StatusOr<SafetensorsFile> d =
      LoadSafetensors(TempPath("densenet_int8.safetensors"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->tensors.count("1.net.0.output_zero_point"), 1u);
  EXPECT_EQ(d->tensors.at("1.net.0.0.running_var").dtype(), DType::kFloat32);
  // Its BatchNorm as a table on uint8: no quantization before the conv.
  EXPECT_EQ(d->tensors.count("1.net.0.0.output_scale"), 1u);
  EXPECT_EQ(d->tensors.count("1.net.0.2.input_scale"), 0u);
}

// ---- reduce_range
// ------------------------------------------------------------

// Activations on 0..127: every zero point saved is within it, the logits
// stay close to float32's, and every kernel path gives the same logits bit
// for bit (avx2_u7 on VPMADDUBSW, the others as ever): a ResNet (the add),
// a DenseNet (uint8 tables and concatenations) and LeNet (its int8 layers'
// inputs quantized after float32 Sigmoids). One bit coarser than 0..255:
// the logits' error is held to twice the bound above (measured: resnet
// 0.054 on one random network).
TEST(ReduceRange, SevenBitModelsRunExactlyOnEveryPath) {
  for (const auto& [name, size] : std::vector<std::pair<const char*, int64_t>>{
           {"resnet", 32}, {"densenet", 32}, {"lenet", 28}}) {
    SCOPED_TRACE(name);
    // The same random weights for every path's model.
    ManualSeed(1);
    const Quantized q =
        QuantizeZooModel(name, size, Calibration::kMinMax, true);
    EXPECT_TRUE(q.int8->reduce_range());
    for (const auto& [key, t] : q.int8->QuantizedStateDict()) {
      if (absl::EndsWith(key, "_zero_point")) {
        EXPECT_LE(t.data<int32_t>()[0], kReducedQuantMax) << key;
      }
    }
    const Tensor ref = Logits(*q.float_model, q.x);
    const Tensor want = Logits(*q.int8, q.x);
    EXPECT_LT(RelativeError(want, ref), 2 * kMaxRelativeError);
    int paths = 0;
    for (QGemmPath path : kAllQGemmPaths) {
      if (!QGemmPathSupported(path).ok()) continue;
      SCOPED_TRACE(QGemmPathName(path));
      ++paths;
      ManualSeed(1);
      const Quantized on =
          QuantizeZooModel(name, size, Calibration::kMinMax, true, path);
      const Tensor got = Logits(*on.int8, on.x);
      ASSERT_EQ(got.ToVector(), want.ToVector());
    }
    std::printf("%s: reduce_range logits equal on %d paths\n", name, paths);
  }
}

// The flag goes into the checkpoint and back; a checkpoint without it is
// one on 0..255.
TEST(ReduceRange, RoundTripsThroughTheCheckpoint) {
  for (bool reduce_range : {false, true}) {
    Quantized q =
        QuantizeZooModel("resnet", 32, Calibration::kMinMax, reduce_range);
    const std::string path = TempPath("resnet_rr.safetensors");
    ASSERT_TRUE(SaveQuantizedModel(*q.int8, "resnet", 32, {}, path).ok());
    absl::StatusOr<SafetensorsFile> file = LoadSafetensors(path);
    ASSERT_TRUE(file.ok());
    EXPECT_EQ(file->metadata.at(kReduceRangeKey),
              reduce_range ? "true" : "false");
    absl::StatusOr<LoadedQuantizedModel> back = LoadQuantizedModel(path);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->model->reduce_range(), reduce_range);
    EXPECT_EQ(Logits(*q.int8, q.x).ToVector(),
              Logits(*back->model, q.x).ToVector());
  }
}

TEST(ReduceRange, ParsesTheFlag) {
  EXPECT_TRUE(*ParseReduceRange("true"));
  EXPECT_FALSE(*ParseReduceRange("false"));
  EXPECT_EQ(*ParseReduceRange("auto"), ReduceRangeHelps());
  EXPECT_EQ(ReduceRangeHelps(), DefaultQGemmPath() == QGemmPath::kAvx2);
  EXPECT_FALSE(ParseReduceRange("yes").ok());
}

class BadCheckpointTest : public testing::Test {
 protected:
  void SetUp() override {
    q_ = QuantizeZooModel("mlp", 28);
    file_.tensors = q_.int8->QuantizedStateDict();
    file_.metadata = {
        {"dive.quantization", "int8"}, {"model", "mlp"}, {"input_size", "28"}};
    ASSERT_TRUE(LoadQuantizedModel(file_, "good").ok());
  }
  // The error of loading file_ after `edit`; it must name each of `parts`.
  void ExpectError(absl::StatusCode code,
                   std::initializer_list<std::string> parts) {
    const absl::StatusOr<LoadedQuantizedModel> r =
        LoadQuantizedModel(file_, "q.safetensors");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), code) << r.status();
    for (const std::string& p : parts) {
      EXPECT_NE(r.status().message().find(p), std::string::npos)
          << "\"" << p << "\" not in: " << r.status().message();
    }
  }
  Quantized q_;
  SafetensorsFile file_;
};

TEST_F(BadCheckpointTest, ScalesMustBeFiniteAndPositive) {
  for (float bad : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity()}) {
    SetUp();
    file_.tensors["1.input_scale"] = Tensor::Scalar(bad);
    ExpectError(
        absl::StatusCode::kInvalidArgument,
        {"q.safetensors: ", "1.input_scale: scale", "must be finite and > 0"});
    SetUp();
    file_.tensors["1.output_scale"] = Tensor::Scalar(bad);
    ExpectError(absl::StatusCode::kInvalidArgument, {"1.output_scale: scale"});
    SetUp();
    file_.tensors["3.weight_scale"].data()[4] = bad;
    ExpectError(absl::StatusCode::kInvalidArgument,
                {"3.weight_scale[4]: scale", "must be finite and > 0"});
  }
}

TEST_F(BadCheckpointTest, ZeroPointsMustBeUint8) {
  for (float bad : {-1.0f, 256.0f}) {
    SetUp();
    file_.tensors["1.input_zero_point"] =
        Tensor::FromVector({bad}, {}).To(DType::kInt32);
    ExpectError(absl::StatusCode::kInvalidArgument,
                {"1.input_zero_point: zero point", "outside 0..255"});
  }
}

TEST_F(BadCheckpointTest, ShapesAndDtypesMustMatchTheModel) {
  file_.tensors["1.weight"] = Tensor::Zeros({256, 700}, DType::kInt8);
  ExpectError(absl::StatusCode::kInvalidArgument,
              {"1.weight: expected int8 [256, 784], got int8 [256, 700]"});
  SetUp();
  file_.tensors["1.weight"] = file_.tensors["1.weight"].To(DType::kFloat32);
  ExpectError(absl::StatusCode::kInvalidArgument,
              {"1.weight: expected int8 [256, 784], got float32"});
  SetUp();
  file_.tensors.erase("3.weight_scale");
  file_.tensors["extra"] = Tensor::Zeros({1});
  ExpectError(absl::StatusCode::kInvalidArgument,
              {"3.weight_scale: missing", "unexpected tensors [extra]"});
}

TEST_F(BadCheckpointTest, BiasBeyondTheKernelsRange) {
  file_.tensors["3.bias"].data<int32_t>()[2] = (1 << 30) + 1;
  ExpectError(absl::StatusCode::kInvalidArgument,
              {"3.bias[2] = 1073741825", "2^30"});
}

TEST_F(BadCheckpointTest, AFloatCheckpointIsNotAnInt8One) {
  file_.metadata.erase("dive.quantization");
  ExpectError(absl::StatusCode::kFailedPrecondition,
              {"q.safetensors is a float32 checkpoint, not an int8 one",
               "//tools:quantize"});
}

// dive.reduce_range is "true" or "false", and where true the zero points
// are within 0..127.
TEST_F(BadCheckpointTest, ReduceRangeMustBeABooleanThatHolds) {
  file_.metadata[kReduceRangeKey] = "yes";
  ExpectError(absl::StatusCode::kInvalidArgument,
              {"q.safetensors: ", "dive.reduce_range is \"yes\"",
               "expected true or false"});
  SetUp();
  file_.metadata[kReduceRangeKey] = "true";
  file_.tensors["1.input_zero_point"] =
      Tensor::FromVector({200.0f}, {}).To(DType::kInt32);
  ExpectError(
      absl::StatusCode::kInvalidArgument,
      {"1.input_zero_point: zero point 200 is above 127", "dive.reduce_range"});
  SetUp();
  file_.metadata[kReduceRangeKey] = "false";
  file_.tensors["1.input_zero_point"] =
      Tensor::FromVector({200.0f}, {}).To(DType::kInt32);
  EXPECT_TRUE(LoadQuantizedModel(file_, "q.safetensors").ok());
}

TEST_F(BadCheckpointTest, MetadataMustNameAModelAndASize) {
  file_.metadata["model"] = "lenet5";
  ExpectError(absl::StatusCode::kInvalidArgument,
              {"q.safetensors: ", "lenet5"});
  SetUp();
  file_.metadata["input_size"] = "x";
  ExpectError(absl::StatusCode::kInvalidArgument, {"input_size"});
  SetUp();
  file_.metadata["model"] = "lenet";  // another architecture's tensors
  ExpectError(absl::StatusCode::kInvalidArgument,
              {"0.weight: missing", "unexpected tensors"});
}

}  // namespace
}  // namespace dive::quant
