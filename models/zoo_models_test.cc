// What every model of the zoo promises, checked once over all of them
// (`AllModels()`): the output shape at each size its spec names, errors for
// sizes outside its range, the PyTorch twin's state_dict, the book's
// initialization, and a loss that SGD brings down. The tests beside each
// model check what only that architecture has (its blocks, their gradients).
//
// The twins' state_dicts are models/testdata/twins/<name>.txt, the output of
// `python3 -m models.pytorch_twins params <name> <recipe input size>`.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "autograd/functions.h"
#include "autograd/variable.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/spec.h"
#include "models/testing.h"
#include "models/zoo.h"
#include "nn/batch_norm.h"
#include "nn/bf16_activations.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/pool.h"
#include "tensor/conv.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/memory_format.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::models {
namespace {

using ::testing::HasSubstr;

// The MLP chapters' models draw their Linear weights from N(0, 0.01^2) with
// zero biases (d2l 3.7, 4.3); every other model is Xavier-uniform.
bool HasNormalInit(const std::string& name) {
  return name == "softmax" || name == "mlp" || name == "mlp_dropout";
}

// A twin file: "<name> at <s>x<s>: <n> parameters", then "  key [dims] dtype"
// per state_dict entry in PyTorch's order, then "output shape: [2, 10]".
struct TwinFile {
  int64_t input_size = 0;
  int64_t num_parameters = 0;
  KeyShapes state_dict;
};

TwinFile ReadTwin(const std::string& name) {
  const std::string path = absl::StrCat("models/testdata/twins/", name, ".txt");
  std::ifstream in(path);
  CHECK(in) << "cannot read " << path;
  std::string header;
  std::getline(in, header);
  TwinFile twin;
  const std::vector<std::string> words = absl::StrSplit(header, ' ');
  CHECK(words.size() == 5 && words[0] == name && words[1] == "at")
      << path << ": unexpected first line \"" << header << "\"";
  CHECK(absl::SimpleAtoi(words[2].substr(0, words[2].find('x')),
                         &twin.input_size) &&
        absl::SimpleAtoi(words[3], &twin.num_parameters))
      << path << ": unexpected first line \"" << header << "\"";
  std::stringstream table;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("  ", 0) != 0) continue;  // the output shape line
    // "  0.weight [6, 1, 5, 5] float32" -> "0.weight [6, 1, 5, 5]"
    table << line.substr(2, line.rfind(' ') - 2) << "\n";
  }
  twin.state_dict = ParseKeyShapes(table.str().c_str());
  return twin;
}

std::vector<std::string> ZooNames() {
  std::vector<std::string> names;
  for (const ModelSpec& spec : AllModels()) names.push_back(spec.name);
  return names;
}

class ZooModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  ZooModelTest() : spec_(*FindModel(GetParam())) {}
  const ModelSpec spec_;
};

TEST_P(ZooModelTest, OutputShapeAtEverySizeItsSpecNames) {
  const ModelSpec& spec = spec_;
  ManualSeed(0);
  for (int64_t size : std::set<int64_t>{spec.min_input_size,
                                        spec.quick_input_size,
                                        spec.recipe.input_size}) {
    std::shared_ptr<nn::Module> net = MakeOrDie(spec, size);
    net->Eval();
    autograd::NoGradGuard no_grad;
    const autograd::Variable y =
        (*net)(autograd::Variable(Normal({2, 1, size, size}, 0, 1)));
    EXPECT_EQ(y.shape(), Shape({2, 10})) << "input size " << size;
  }
}

TEST_P(ZooModelTest, RejectsSizesOutsideItsRange) {
  const ModelSpec& spec = spec_;
  std::set<int64_t> bad = {0, -3, spec.max_input_size + 1};
  if (spec.min_input_size > 1) bad.insert(spec.min_input_size - 1);
  for (int64_t size : bad) {
    SCOPED_TRACE(absl::StrCat(spec.name, ".make(", size, ")"));
    const absl::StatusOr<std::shared_ptr<nn::Module>> net = spec.make(size);
    EXPECT_EQ(net.status().code(), absl::StatusCode::kInvalidArgument)
        << net.status();
    EXPECT_THAT(net.status().message(), HasSubstr(absl::StrCat("got ", size)));
  }
}

TEST_P(ZooModelTest, StateDictMatchesPyTorchTwin) {
  const ModelSpec& spec = spec_;
  const TwinFile twin = ReadTwin(spec.name);
  ASSERT_EQ(twin.input_size, spec.recipe.input_size)
      << "regenerate models/testdata/twins/" << spec.name << ".txt";
  ASSERT_FALSE(twin.state_dict.empty());
  const std::shared_ptr<nn::Module> net = MakeOrDie(spec, twin.input_size);
  EXPECT_EQ(net->NumParameters(), twin.num_parameters);
  ExpectStateDictMatchesTwin(*net, twin.state_dict);
}

// Xavier: weights U(-b, b), b = sqrt(6 / (fan_in + fan_out)), biases as
// PyTorch leaves them, U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Normal: Linear
// weights with standard deviation 0.01 and zero biases.
TEST_P(ZooModelTest, WeightsFollowTheBooksInitialization) {
  const ModelSpec& spec = spec_;
  ManualSeed(5);
  const std::shared_ptr<nn::Module> net =
      MakeOrDie(spec, spec.quick_input_size);
  int checked = 0;
  for (const auto& [name, module] : net->NamedModules()) {
    const autograd::Variable* weight = nullptr;
    const autograd::Variable* bias = nullptr;
    if (const auto* fc = dynamic_cast<const nn::Linear*>(module)) {
      weight = &fc->weight();
      bias = &fc->bias();
    } else if (const auto* conv = dynamic_cast<const nn::Conv2d*>(module)) {
      weight = &conv->weight();
      bias = &conv->bias();
    } else {
      continue;
    }
    SCOPED_TRACE(absl::StrCat(spec.name, " ", name, " ", module->Describe()));
    const Shape& w = weight->shape();
    const int64_t receptive = w.numel() / (w[0] * w[1]);
    const float fan_in = static_cast<float>(w[1] * receptive);
    const float fan_out = static_cast<float>(w[0] * receptive);
    if (HasNormalInit(spec.name)) {
      double sum_sq = 0;
      for (float v : weight->data().ToVector()) sum_sq += double{v} * v;
      EXPECT_NEAR(std::sqrt(sum_sq / w.numel()), 0.01, 0.002);
      if (bias->defined()) {
        EXPECT_EQ(MaxAbs(bias->data()), 0.0f);
      }
    } else {
      ExpectUniformBound(weight->data(), std::sqrt(6.0f / (fan_in + fan_out)));
      if (bias->defined()) {
        EXPECT_LE(MaxAbs(bias->data()), 1.0f / std::sqrt(fan_in));
      }
    }
    ++checked;
  }
  EXPECT_GT(checked, 0) << spec.name << " has no Linear or Conv2d";
}

TEST_P(ZooModelTest, SgdStepsReduceTheLossOnAFixedBatch) {
  const ModelSpec& spec = spec_;
  ManualSeed(6);
  const int64_t size = spec.quick_input_size;
  const std::shared_ptr<nn::Module> net = MakeOrDie(spec, size);
  const auto [x, y] = RandomBatch(4, size);
  // Eval-mode loss (no dropout, batch norm on its moving averages) before
  // and after ten steps at a tenth of the book's learning rate: small enough
  // that steps on one fixed batch descend (at the book's rate VGG's and
  // LeNet's losses on 4 images still oscillate after 10 steps).
  const auto [before, after] =
      EvalLossBeforeAndAfterSgdSteps(*net, x, y, spec.recipe.lr / 10, 10);
  EXPECT_LT(after, before) << spec.name << ": loss " << before << " -> "
                           << after;
}

// Fuse: evaluation with each convolution's BatchNorm folded in and
// its ReLU (and ResNet's residual add) in its output pass gives the unfused
// logits within float rounding, with BatchNorm statistics and affine
// parameters far from their initial values so the folding matters; training
// mode still trains.
TEST_P(ZooModelTest, FusedEvaluationMatchesUnfused) {
  const ModelSpec& spec = spec_;
  ManualSeed(7);
  const int64_t size = spec.quick_input_size;
  const std::shared_ptr<nn::Module> net = MakeOrDie(spec, size);
  Generator gen(8);
  int convs = 0;
  for (const auto& [name, module] : net->NamedModules()) {
    convs += dynamic_cast<const nn::Conv2d*>(module) != nullptr;
    auto* bn = dynamic_cast<nn::BatchNormBase*>(module);
    if (bn == nullptr) continue;
    const int64_t c = bn->options().num_features;
    // Handles sharing the module's storage.
    Tensor mean = bn->running_mean(), var = bn->running_var();
    Tensor gamma = bn->weight().data(), beta = bn->bias().data();
    mean.CopyFrom(gen.Normal({c}, 0, 0.2f));
    var.CopyFrom(gen.Uniform({c}, 0.5f, 2.0f));
    gamma.CopyFrom(gen.Uniform({c}, 0.5f, 1.5f));
    beta.CopyFrom(gen.Normal({c}, 0, 0.2f));
  }
  const auto [x, y] = RandomBatch(3, size);
  net->Eval();
  std::vector<float> unfused, fused;
  {
    autograd::NoGradGuard no_grad;
    unfused = (*net)(autograd::Variable(x)).data().ToVector();
    net->Fuse();
    fused = (*net)(autograd::Variable(x)).data().ToVector();
  }
  ASSERT_EQ(fused.size(), unfused.size());
  double scale = 1;
  for (float v : unfused) scale = std::max(scale, std::fabs(double{v}));
  for (size_t i = 0; i < fused.size(); ++i) {
    EXPECT_NEAR(fused[i], unfused[i], 2e-5 * scale) << spec.name << " at " << i;
  }
  // Which convolutions fused: all but LeNet's (a sigmoid follows them).
  int fusions = 0;
  for (const auto& [name, module] : net->NamedModules()) {
    if (const auto* conv = dynamic_cast<const nn::Conv2d*>(module)) {
      fusions += conv->FoldsBatchNorm() || conv->AppliesRelu();
    }
  }
  if (convs > 0 && spec.name != "lenet") {
    EXPECT_GT(fusions, 0) << spec.name;
  } else {
    EXPECT_EQ(fusions, 0) << spec.name;
  }
  net->Train();
  const auto [before, after] =
      EvalLossBeforeAndAfterSgdSteps(*net, x, y, spec.recipe.lr / 10, 5);
  EXPECT_LT(after, before) << spec.name << " (fused): loss " << before
                           << " -> " << after;
}

// A frozen model (nn::Module::Freeze: the weights folded, rounded and packed
// once) gives the logits of the fused model's evaluation, bit for bit, in
// float32 and bf16, at its first call and later ones; Train thaws it, and
// gradients reach every parameter again.
TEST_P(ZooModelTest, FrozenEvaluationMatchesUnfrozen) {
  const ModelSpec& spec = spec_;
  ManualSeed(8);
  const int64_t size = spec.quick_input_size;
  const std::shared_ptr<nn::Module> net = MakeOrDie(spec, size);
  net->Fuse();
  const auto [x, y] = RandomBatch(3, size);
  for (const MatmulPrecision precision :
       {MatmulPrecision::kFloat32, MatmulPrecision::kBfloat16}) {
    const ScopedMatmulPrecision scope(precision);
    SCOPED_TRACE(precision == MatmulPrecision::kFloat32 ? "float32" : "bf16");
    autograd::NoGradGuard no_grad;
    net->Thaw();
    net->Eval();
    const std::vector<float> want =
        (*net)(autograd::Variable(x)).data().ToVector();
    net->Freeze();
    for (int call = 0; call < 2; ++call) {
      EXPECT_EQ((*net)(autograd::Variable(x)).data().ToVector(), want)
          << spec.name;
    }
  }
  net->Train();
  EXPECT_FALSE(net->is_frozen());
  net->ZeroGrad();
  autograd::SoftmaxCrossEntropy((*net)(autograd::Variable(x)), y).Backward();
  for (const auto& [name, param] : net->NamedParameters()) {
    EXPECT_TRUE(param.grad().defined()) << spec.name << " " << name;
  }
}

// Fuse in training mode (ReLU in the convolution's or BatchNorm's pass):
// a fused twin's loss and gradients are the unfused model's, bit for bit.
// ... in float32, and in bf16 (matmul operands rounded to bf16), where the
// fused model also stores each convolution or batch norm output that feeds
// a convolution in bf16: exact, since that convolution rounds it anyway.
TEST_P(ZooModelTest, FusedTrainingStepIsBitIdentical) {
  const ModelSpec& spec = spec_;
  ManualSeed(9);
  const int64_t size = spec.quick_input_size;
  const std::shared_ptr<nn::Module> plain = MakeOrDie(spec, size);
  const std::shared_ptr<nn::Module> fused = MakeOrDie(spec, size);
  ASSERT_TRUE(fused->LoadStateDict(plain->StateDict()).ok());
  fused->Fuse();
  int bf16_outputs = 0;  // of the fused model's modules
  const autograd::HookHandle counter = fused->RegisterForwardHooksOnAll(
      nullptr, [&](nn::Module&, const autograd::Variable&,
                   const autograd::Variable& out) {
        if (out.data().dtype() == DType::kBfloat16) ++bf16_outputs;
        return autograd::Variable();
      });
  const auto [x, y] = RandomBatch(3, size);
  for (const MatmulPrecision precision :
       {MatmulPrecision::kFloat32, MatmulPrecision::kBfloat16}) {
    const ScopedMatmulPrecision scope(precision);
    SCOPED_TRACE(precision == MatmulPrecision::kFloat32 ? "float32" : "bf16");
    std::vector<float> losses;
    for (nn::Module* net : {plain.get(), fused.get()}) {
      net->ZeroGrad();
      ManualSeed(10);  // the same dropout masks
      autograd::Variable loss =
          autograd::SoftmaxCrossEntropy((*net)(autograd::Variable(x)), y);
      loss.Backward();
      losses.push_back(loss.data().item());
    }
    EXPECT_EQ(losses[0], losses[1]) << spec.name;
    const auto pp = plain->NamedParameters(), pf = fused->NamedParameters();
    ASSERT_EQ(pp.size(), pf.size());
    for (size_t i = 0; i < pp.size(); ++i) {
      EXPECT_EQ(pf[i].second.grad().ToVector(), pp[i].second.grad().ToVector())
          << spec.name << " " << pp[i].first;
    }
    if (precision == MatmulPrecision::kFloat32) {
      EXPECT_EQ(bf16_outputs, 0);
    }
  }
  // The models with convolutions, or batch norms, feeding convolutions
  // store some activations in bf16.
  const std::set<std::string> chains = {"alexnet",   "vgg",    "nin",
                                        "googlenet", "resnet", "densenet"};
  EXPECT_EQ(bf16_outputs > 0, chains.count(spec.name) > 0) << spec.name;
}

// With the activations stored in bf16 as autocast stores them
// (nn/bf16_activations.h, what the trainers choose in bf16), a training step
// of a model with batch norms, max pooling or GoogLeNet's concatenations
// stays as close to the float32 step as the exact bf16 step is (bf16 matmuls
// alone: the loss, and all gradients together), and more of its modules'
// outputs are bf16; in the other models nothing changes.
TEST_P(ZooModelTest, Bf16AutocastActivationsStayWithinBf16Rounding) {
  const ModelSpec& spec = spec_;
  ManualSeed(19);
  const int64_t size = spec.quick_input_size;
  const std::shared_ptr<nn::Module> net = MakeOrDie(spec, size);
  net->Fuse();
  bool autocast_stores = spec.name == "googlenet";
  for (const auto& [name, module] : net->NamedModules()) {
    autocast_stores |=
        dynamic_cast<const nn::BatchNormBase*>(module) != nullptr ||
        dynamic_cast<const nn::MaxPool2d*>(module) != nullptr;
  }
  // Named tensors, not a structured binding: lambdas capture them (C++17).
  const std::pair<Tensor, Tensor> batch = RandomBatch(10, size);
  const Tensor& x = batch.first;
  const Tensor& y = batch.second;
  struct Step {
    float loss;
    std::vector<float> grads;  // all parameters' gradients, in order
    int bf16_outputs;          // modules' outputs stored in bf16
  };
  const auto step = [&](MatmulPrecision precision, nn::Bf16Activations choice) {
    const ScopedMatmulPrecision matmuls(precision);
    const nn::ScopedBf16Activations stored(choice);
    const auto state = net->StateDict();  // the running statistics, restored
    Step s{0.0f, {}, 0};
    autograd::HookHandle counter = net->RegisterForwardHooksOnAll(
        nullptr, [&s](nn::Module& m, const autograd::Variable&,
                      const autograd::Variable& out) {
          s.bf16_outputs += out.data().dtype() == DType::kBfloat16;
          return autograd::Variable();
        });
    net->ZeroGrad();
    ManualSeed(10);  // the same dropout masks
    autograd::Variable loss =
        autograd::SoftmaxCrossEntropy((*net)(autograd::Variable(x)), y);
    loss.Backward();
    counter.Remove();
    CHECK(net->LoadStateDict(state).ok());
    s.loss = loss.data().item();
    for (const auto& [name, p] : net->NamedParameters()) {
      const std::vector<float> g = p.grad().ToVector();
      s.grads.insert(s.grads.end(), g.begin(), g.end());
    }
    return s;
  };
  using nn::Bf16Activations;
  const Step f32 =
      step(MatmulPrecision::kFloat32, Bf16Activations::kWhereExact);
  const Step exact =
      step(MatmulPrecision::kBfloat16, Bf16Activations::kWhereExact);
  const Step autocast =
      step(MatmulPrecision::kBfloat16, Bf16Activations::kAutocast);
  if (!autocast_stores) {
    EXPECT_EQ(autocast.loss, exact.loss) << spec.name;
    EXPECT_EQ(autocast.grads, exact.grads) << spec.name;
    EXPECT_EQ(autocast.bf16_outputs, exact.bf16_outputs);
    return;
  }
  EXPECT_GT(autocast.bf16_outputs, exact.bf16_outputs) << spec.name;
  // ||g - f32.grads|| / ||f32.grads||.
  const auto distance = [&f32](const std::vector<float>& g) {
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < g.size(); ++i) {
      diff += (double{g[i]} - f32.grads[i]) * (double{g[i]} - f32.grads[i]);
      norm += double{f32.grads[i]} * f32.grads[i];
    }
    return std::sqrt(diff / norm);
  };
  // Plus bf16's unit roundoff (2^-9) of the loss: rounding activations to
  // bf16 is discontinuous, so a change far below it anywhere upstream (batch
  // norm's sums in another order, 1e-7 relative) flips some roundings and
  // moves the loss by a chaotic amount of that order; in ResNet-18 it once
  // moved |autocast - f32| from 0.0036 to 0.0063 while the float32 loss
  // moved 8e-7.
  EXPECT_LE(std::abs(autocast.loss - f32.loss),
            2 * std::abs(exact.loss - f32.loss) +
                std::ldexp(1.0, -9) * std::abs(f32.loss))
      << spec.name;
  EXPECT_LE(distance(autocast.grads), 2 * distance(exact.grads) + 1e-3)
      << spec.name << ": bf16 matmuls alone are " << distance(exact.grads)
      << " from float32";
}

// The trainers' bf16 step with the activations kept channels-last between
// oneDNN's convolutions (tensor/conv.h SetConvMemoryFormat) computes the
// same step as with NCHW ones, up to the order of oneDNN's sums and the
// bf16 roundings that order flips: as close to float32 as the NCHW step.
TEST_P(ZooModelTest, ChannelsLastTrainingStepMatchesContiguous) {
  const ModelSpec& spec = spec_;
  ManualSeed(23);
  const int64_t size = spec.quick_input_size;
  const std::shared_ptr<nn::Module> net = MakeOrDie(spec, size);
  net->Fuse();
  const std::pair<Tensor, Tensor> batch = RandomBatch(10, size);
  const auto step = [&](MatmulPrecision precision, MemoryFormat format,
                        int* channels_last_outputs) {
    const ScopedMatmulPrecision matmuls(precision);
    const nn::ScopedBf16Activations stored(nn::Bf16Activations::kAutocast);
    const ScopedConvMemoryFormat layout(format);
    const auto state = net->StateDict();  // the running statistics, restored
    autograd::HookHandle counter = net->RegisterForwardHooksOnAll(
        nullptr, [&](nn::Module&, const autograd::Variable&,
                     const autograd::Variable& out) {
          *channels_last_outputs +=
              MemoryFormatOf(out.data()) == MemoryFormat::kChannelsLast;
          return autograd::Variable();
        });
    net->ZeroGrad();
    ManualSeed(10);  // the same dropout masks
    autograd::Variable loss = autograd::SoftmaxCrossEntropy(
        (*net)(autograd::Variable(batch.first)), batch.second);
    loss.Backward();
    counter.Remove();
    CHECK(net->LoadStateDict(state).ok());
    std::vector<double> grads = {loss.data().item()};
    for (const auto& [name, p] : net->NamedParameters()) {
      const std::vector<float> g = p.grad().ToVector();
      grads.insert(grads.end(), g.begin(), g.end());
    }
    return grads;  // the loss, then every gradient
  };
  int unused = 0, last_outputs = 0;
  const std::vector<double> f32 =
      step(MatmulPrecision::kFloat32, MemoryFormat::kContiguous, &unused);
  const std::vector<double> nchw =
      step(MatmulPrecision::kBfloat16, MemoryFormat::kContiguous, &unused);
  const std::vector<double> nhwc = step(
      MatmulPrecision::kBfloat16, MemoryFormat::kChannelsLast, &last_outputs);
  // Where oneDNN runs convolutions (bf16 on AVX512-BF16; on channels-last
  // activations those of one or at least 16 input channels,
  // tensor/conv_onednn.h), some layer's output is channels-last; elsewhere
  // none is.
  bool onednn = false;
  for (const auto& [name, p] : net->NamedParameters()) {
    onednn |= p.rank() == 4 && (p.dim(1) >= 16 || p.dim(1) == 1) &&
              ActiveIsa() >= Isa::kAvx512Bf16;  // a convolution's weights
  }
  EXPECT_EQ(last_outputs > 0, onednn) << spec.name;
  const auto distance = [&f32](const std::vector<double>& g) {
    double diff = 0.0, norm = 0.0;
    for (size_t i = 1; i < g.size(); ++i) {
      diff += (g[i] - f32[i]) * (g[i] - f32[i]);
      norm += f32[i] * f32[i];
    }
    return std::sqrt(diff / norm);
  };
  EXPECT_LE(
      std::abs(nhwc[0] - f32[0]),
      2 * std::abs(nchw[0] - f32[0]) + std::ldexp(1.0, -9) * std::abs(f32[0]))
      << spec.name;
  EXPECT_LE(distance(nhwc), 2 * distance(nchw) + 1e-3)
      << spec.name << ": the NCHW bf16 step is " << distance(nchw)
      << " from float32";
}

INSTANTIATE_TEST_SUITE_P(Zoo, ZooModelTest, ::testing::ValuesIn(ZooNames()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace dive::models
