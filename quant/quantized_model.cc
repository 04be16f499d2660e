#include "quant/quantized_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "autograd/functions.h"
#include "glog/logging.h"
#include "models/densenet/densenet.h"
#include "models/googlenet/googlenet.h"
#include "models/resnet/resnet.h"
#include "models/zoo.h"
#include "nn/activation.h"
#include "nn/batch_norm.h"
#include "nn/conv2d.h"
#include "nn/dropout.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/pool.h"
#include "nn/sequential.h"
#include "tensor/conv.h"
#include "tensor/qconv.h"
#include "tensor/qgemm.h"
#include "tensor/qops.h"

namespace dive::quant {

struct QuantizedModel::Step {
  enum class Kind {
    kConv,       // int8
    kLinear,     // int8
    kMaxPool,    // either domain
    kAvgPool,    // either domain (AvgPool2d, adaptive and global)
    kRelu,       // either domain
    kFlatten,    // either domain
    kIdentity,   // either domain (Dropout in evaluation)
    kFloat,      // float32
    kBatchNorm,  // int8: a BatchNorm2d that follows no convolution, on uint8
                 // input as a table of its 256 values per channel
    kAdd,        // block, int8: relu(branch 0 + branch 1) (ResNet's Residual)
    kConcat,     // block, int8: the branches on the channels (Inception,
                 // one ConvBlock of a DenseBlock: its input and its output)
  };
  Kind kind = Kind::kFloat;
  std::string name;
  std::shared_ptr<nn::Module> module;
  bool folds_bn = false;    // kConv: a BatchNorm2d after it, folded
  bool relu = false;        // int8 and kAdd: the ReLU after it, fused
  bool extra_relu = false;  // ... from a ReLU module of its own
  // Domains, from the architecture alone.
  bool quantize_input = false;  // int8, blocks: input arrives in float32
  bool uint8_output = false;    // int8: its output goes on in uint8
  bool uint8_input = false;     // either domain: runs on uint8
  // int8 in a kConcat's branch: its output, the branch's, is written
  // straight in the concatenation's QParams (then a copy there).
  bool output_from_block = false;
  // Blocks: the paths from the block's input to its add or concatenation
  // (an empty one is the input itself). Blocks take uint8 (`input`, quantized
  // when it arrives in float32) and give uint8 (`output`).
  std::vector<std::vector<Step>> branches;
  // Numbers: calibrated, or loaded. `input` is also set (Propagate) when the
  // input arrives in uint8 from an earlier int8 layer.
  QParams input, output;
  Tensor weight;        // int8 [OC, ...]
  Tensor weight_scale;  // float32 [OC]
  Tensor bias;          // int32 [OC]
  // Derived (Pack).
  QPackedWeights packed;
  std::vector<float> multipliers;
  // The largest uint8 value it gives (Pack): 255, or 127 under reduce_range
  // (every value it quantizes or requantizes clamped to it).
  int32_t quant_max = 255;
  // kBatchNorm (Pack): [C][256] outputs of each channel's input values,
  // uint8 (uint8_output) or float32.
  std::vector<uint8_t> table_u8;
  std::vector<float> table_f32;
};

namespace {

using Step = QuantizedModel::Step;
using Kind = Step::Kind;

std::string Join(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : absl::StrCat(prefix, ".", key);
}

// Layers with int8 weights.
bool IsInt8(Kind k) { return k == Kind::kConv || k == Kind::kLinear; }
// Layers that take uint8 and give uint8 or float32 as what follows needs.
bool IsInt8Layer(Kind k) { return IsInt8(k) || k == Kind::kBatchNorm; }
bool IsBlock(Kind k) { return k == Kind::kAdd || k == Kind::kConcat; }
// Layers that take uint8, quantizing a float32 input.
bool TakesUint8(Kind k) { return IsInt8Layer(k) || IsBlock(k); }
bool IsEither(Kind k) { return !TakesUint8(k) && k != Kind::kFloat; }

// f(step) for every step of `steps`, a block's branches before the block.
template <typename Steps, typename F>
void ForEachStep(Steps& steps, const F& f) {
  for (auto& s : steps) {
    for (auto& branch : s.branches) ForEachStep(branch, f);
    f(s);
  }
}

// Leaf modules with their state_dict names, in the order they run.
using Layers = std::vector<std::pair<std::string, std::shared_ptr<nn::Module>>>;

template <typename T>
bool Is(const std::shared_ptr<nn::Module>& m) {
  return dynamic_cast<const T*>(m.get()) != nullptr;
}

// The blocks with a data flow of their own that the plan knows.
bool IsKnownBlock(const std::shared_ptr<nn::Module>& m) {
  return Is<models::Residual>(m) || Is<models::Inception>(m) ||
         Is<models::DenseBlock>(m);
}

// The leaves and known blocks of `m`'s chain of Sequentials, with their
// state_dict names.
absl::Status CollectLayers(const std::shared_ptr<nn::Module>& m,
                           const std::string& name, Layers* out) {
  if (dynamic_cast<const nn::Sequential*>(m.get()) != nullptr) {
    for (const auto& [child, module] : m->children()) {
      if (absl::Status s = CollectLayers(module, Join(name, child), out);
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }
  if (!m->children().empty() && !IsKnownBlock(m)) {
    return absl::UnimplementedError(absl::StrCat(
        "int8 quantization: block \"", name, "\" (", m->Describe(),
        ") has a data flow of its own that the int8 plan does not know; it "
        "knows chains of layers (Sequential) and ResNet's Residual, "
        "GoogLeNet's Inception and DenseNet's DenseBlock"));
  }
  out->emplace_back(name, m);
  return absl::OkStatus();
}

// Whether layer i exists and is a T.
template <typename T>
bool IsAt(const Layers& layers, size_t i) {
  return i < layers.size() && Is<T>(layers[i].second);
}

// The child `name` of block `m` (which has it: its constructor registers it).
std::shared_ptr<nn::Module> Child(const nn::Module& m,
                                  const std::string& name) {
  for (const auto& [child, module] : m.children()) {
    if (child == name) return module;
  }
  LOG(FATAL) << m.Describe() << " has no child " << name;
  return nullptr;
}

absl::Status PlanChain(const Layers& layers, std::vector<Step>* steps);

// The chain of `names` (children of block `m`, called `prefix`).
absl::StatusOr<std::vector<Step>> PlanBranch(
    const nn::Module& m, const std::string& prefix,
    std::initializer_list<const char*> names) {
  Layers layers;
  for (const char* name : names) {
    layers.emplace_back(Join(prefix, name), Child(m, name));
  }
  std::vector<Step> steps;
  if (absl::Status s = PlanChain(layers, &steps); !s.ok()) return s;
  return steps;
}

// Appends the steps of a known block (IsKnownBlock) named `name`.
absl::Status PlanBlock(const std::string& name,
                       const std::shared_ptr<nn::Module>& m,
                       std::vector<Step>* steps) {
  Step block;
  block.name = name;
  block.module = m;
  if (Is<models::Residual>(m)) {
    // relu(conv2(conv1(x)) + shortcut), bn1 and bn2 folded, the ReLU after
    // bn1 fused into conv1 and the last one into the add.
    block.kind = Kind::kAdd;
    block.relu = true;
    absl::StatusOr<std::vector<Step>> body =
        PlanBranch(*m, name, {"conv1", "bn1", "conv2", "bn2"});
    if (!body.ok()) return body.status();
    CHECK(body->size() == 2 && body->back().kind == Kind::kConv &&
          body->back().folds_bn)
        << name << ": expected conv1 and conv2 with their BatchNorms folded";
    body->back().relu = false;  // Fuse() gave conv2 the ReLU after the add
    block.branches.push_back(*std::move(body));
    bool shortcut = false;
    for (const auto& [child, unused] : m->children()) {
      shortcut = shortcut || child == "conv3";
    }
    absl::StatusOr<std::vector<Step>> path =
        shortcut ? PlanBranch(*m, name, {"conv3"}) : std::vector<Step>();
    if (!path.ok()) return path.status();
    block.branches.push_back(*std::move(path));
    steps->push_back(std::move(block));
    return absl::OkStatus();
  }
  if (Is<models::Inception>(m)) {
    block.kind = Kind::kConcat;
    for (const auto& names : {std::initializer_list<const char*>{"p1_1"},
                              {"p2_1", "p2_2"},
                              {"p3_1", "p3_2"},
                              {"p4_1", "p4_2"}}) {
      absl::StatusOr<std::vector<Step>> path = PlanBranch(*m, name, names);
      if (!path.ok()) return path.status();
      block.branches.push_back(*std::move(path));
    }
    steps->push_back(std::move(block));
    return absl::OkStatus();
  }
  // DenseBlock: y = concat(y, conv_block(y)) for each of its ConvBlocks.
  CHECK(Is<models::DenseBlock>(m)) << name << ": " << m->Describe();
  const std::string net = Join(name, "net");
  for (const auto& [child, conv_block] : Child(*m, "net")->children()) {
    Step concat;
    concat.kind = Kind::kConcat;
    concat.name = Join(net, child);
    concat.module = conv_block;
    Layers layers;
    if (absl::Status s = CollectLayers(conv_block, concat.name, &layers);
        !s.ok()) {
      return s;
    }
    std::vector<Step> path;
    if (absl::Status s = PlanChain(layers, &path); !s.ok()) return s;
    concat.branches.push_back({});  // the input itself
    concat.branches.push_back(std::move(path));
    steps->push_back(std::move(concat));
  }
  return absl::OkStatus();
}

// Appends the steps of `layers` (kinds; domains come later).
absl::Status PlanChain(const Layers& layers, std::vector<Step>* steps) {
  for (size_t i = 0; i < layers.size(); ++i) {
    if (IsKnownBlock(layers[i].second)) {
      if (absl::Status st = PlanBlock(layers[i].first, layers[i].second, steps);
          !st.ok()) {
        return st;
      }
      continue;
    }
    Step s;
    s.name = layers[i].first;
    s.module = layers[i].second;
    if (const auto* conv = dynamic_cast<const nn::Conv2d*>(s.module.get())) {
      s.kind = Kind::kConv;
      if (conv->FoldsBatchNorm()) {
        CHECK(IsAt<nn::BatchNormBase>(layers, i + 1))
            << s.name << ": folds a BatchNorm that does not follow it";
        s.folds_bn = true;
        ++i;
      }
      s.relu = conv->AppliesRelu();
    } else if (Is<nn::Linear>(s.module)) {
      s.kind = Kind::kLinear;
    } else if (Is<nn::BatchNorm2d>(s.module)) {
      s.kind = Kind::kBatchNorm;
      s.relu = s.module->AppliesRelu();
    } else if (Is<nn::MaxPool2d>(s.module)) {
      s.kind = Kind::kMaxPool;
    } else if (Is<nn::AvgPool2d>(s.module) ||
               Is<nn::AdaptiveAvgPool2d>(s.module) ||
               Is<nn::GlobalAvgPool2d>(s.module)) {
      s.kind = Kind::kAvgPool;
    } else if (Is<nn::ReLU>(s.module)) {
      s.kind = Kind::kRelu;
    } else if (Is<nn::Flatten>(s.module)) {
      s.kind = Kind::kFlatten;
    } else if (Is<nn::Dropout>(s.module)) {
      s.kind = Kind::kIdentity;
    }
    // The ReLU after an int8 layer: in its output tile. One the layer's
    // Fuse() absorbed is skipped; another is applied by the float pass.
    if (IsInt8Layer(s.kind) && IsAt<nn::ReLU>(layers, i + 1)) {
      s.extra_relu = !s.relu;
      s.relu = true;
      ++i;
    }
    steps->push_back(std::move(s));
  }
  return absl::OkStatus();
}

// The domains of the chain `steps`, whose input is uint8 when `in_uint8`
// and whose output must be uint8 when `out_uint8` (a block's branch); sets
// *uint8 to whether its output is.
absl::Status AssignDomains(std::vector<Step>& steps, bool in_uint8,
                           bool out_uint8, bool* uint8) {
  *uint8 = in_uint8;  // the domain of the tensor between layers
  for (size_t k = 0; k < steps.size(); ++k) {
    Step& s = steps[k];
    if (IsInt8Layer(s.kind)) {
      s.quantize_input = !*uint8;
      size_t next = k + 1;
      while (next < steps.size() && IsEither(steps[next].kind)) ++next;
      s.uint8_output =
          next < steps.size() ? TakesUint8(steps[next].kind) : out_uint8;
      *uint8 = s.uint8_output;
    } else if (IsBlock(s.kind)) {
      s.quantize_input = !*uint8;
      for (std::vector<Step>& branch : s.branches) {
        bool branch_uint8 = false;
        if (absl::Status st = AssignDomains(branch, true, true, &branch_uint8);
            !st.ok()) {
          return st;
        }
        if (!branch_uint8) {
          return absl::UnimplementedError(
              absl::StrCat("int8 quantization: a path of block \"", s.name,
                           "\" ends in a float32 layer (", branch.back().name,
                           "); its int8 add or concat needs uint8 parts"));
        }
      }
      if (s.kind == Kind::kConcat) {
        // The layer that gives a path's output writes it in the
        // concatenation's QParams.
        for (std::vector<Step>& branch : s.branches) {
          for (auto it = branch.rbegin(); it != branch.rend(); ++it) {
            if (IsEither(it->kind)) continue;
            it->output_from_block = IsInt8Layer(it->kind);
            break;
          }
        }
      }
      *uint8 = true;
    } else if (IsEither(s.kind)) {
      s.uint8_input = *uint8;
    } else {
      *uint8 = false;
    }
  }
  return absl::OkStatus();
}

// The plan of `model` (put in evaluation mode and fused): kinds and domains.
absl::StatusOr<std::vector<Step>> BuildPlan(
    const std::shared_ptr<nn::Module>& model) {
  model->Eval();
  model->Fuse();
  Layers layers;
  if (absl::Status s = CollectLayers(model, "", &layers); !s.ok()) return s;
  std::vector<Step> steps;
  if (absl::Status s = PlanChain(layers, &steps); !s.ok()) return s;
  bool uint8 = false;
  if (absl::Status s = AssignDomains(steps, false, false, &uint8); !s.ok()) {
    return s;
  }
  return steps;
}

// What follows from the calibrated or loaded numbers, along the chain
// `steps` whose input (when uint8) has QParams `current`: each int8 layer's
// and block's input QParams where it arrives in uint8, and the output of
// the layers that write into their concatenation's. Returns the chain's
// output QParams.
QParams Propagate(std::vector<Step>& steps, QParams current) {
  for (Step& s : steps) {
    if (!TakesUint8(s.kind)) continue;
    if (!s.quantize_input) s.input = current;
    for (std::vector<Step>& branch : s.branches) {
      for (Step& b : branch) {
        if (b.output_from_block) b.output = s.output;
      }
      Propagate(branch, s.input);
    }
    current = s.output;
  }
  return current;
}

// A kBatchNorm's tables: for each channel c and uint8 value v,
// y = gamma[c] * (x - mean[c]) / sqrt(var[c] + eps) + beta[c] (then
// max(y, 0) with the ReLU) of x = the real value of v, in double, and
// quantized as quant/qparams.h's Quantize (or float32 when the output is).
void BuildTables(Step& s) {
  const auto& bn = static_cast<const nn::BatchNormBase&>(*s.module);
  const int64_t c = bn.options().num_features;
  const Tensor gamma = bn.weight().data().Contiguous();
  const Tensor beta = bn.bias().data().Contiguous();
  const Tensor mean = bn.running_mean().Contiguous();
  const Tensor var = bn.running_var().Contiguous();
  s.table_u8.assign(s.uint8_output ? c * 256 : 0, 0);
  s.table_f32.assign(s.uint8_output ? 0 : c * 256, 0.0f);
  for (int64_t ch = 0; ch < c; ++ch) {
    const double a = gamma.data<float>()[ch] /
                     std::sqrt(static_cast<double>(var.data<float>()[ch]) +
                               bn.options().eps);
    const double b = beta.data<float>()[ch] - mean.data<float>()[ch] * a;
    for (int v = 0; v < 256; ++v) {
      const double x =
          static_cast<double>(s.input.scale) * (v - s.input.zero_point);
      double y = a * x + b;
      if (s.relu) y = std::max(y, 0.0);
      if (s.uint8_output) {
        const double q =
            std::nearbyint(y / s.output.scale) + s.output.zero_point;
        s.table_u8[ch * 256 + v] = static_cast<uint8_t>(
            std::clamp(q, 0.0, static_cast<double>(s.quant_max)));
      } else {
        s.table_f32[ch * 256 + v] = static_cast<float>(y);
      }
    }
  }
}

// The kernels' packed weights and per-channel multipliers, on the path for
// 7-bit activations where `reduce_range`.
absl::Status Pack(std::vector<Step>& steps, bool reduce_range,
                  std::optional<QGemmPath> forced_path) {
  const QGemmPath path =
      forced_path.value_or(DefaultQGemmPath(/*activations_7bit=*/reduce_range));
  absl::Status status;
  ForEachStep(steps, [&](Step& s) {
    s.quant_max = reduce_range ? kReducedQuantMax : 255;
    if (s.kind == Kind::kBatchNorm) BuildTables(s);
    if (!IsInt8(s.kind) || !status.ok()) return;
    const int64_t oc = s.weight.dim(0);
    const int32_t* bias = s.bias.data<int32_t>();
    for (int64_t o = 0; o < oc; ++o) {
      if (std::abs(static_cast<int64_t>(bias[o])) > kQGemmMaxBias) {
        status = absl::InvalidArgumentError(
            absl::StrCat(s.name, ".bias[", o, "] = ", bias[o],
                         ": beyond the int8 kernels' +-2^30"));
        return;
      }
    }
    const float* ws = s.weight_scale.data<float>();
    s.multipliers.resize(oc);
    for (int64_t o = 0; o < oc; ++o) {
      const double m = static_cast<double>(s.input.scale) * ws[o];
      s.multipliers[o] =
          static_cast<float>(s.uint8_output ? m / s.output.scale : m);
    }
    const int8_t* w = s.weight.data<int8_t>();
    absl::StatusOr<QPackedWeights> packed =
        s.kind == Kind::kConv
            ? PackQConv2dWeights(path, oc, s.weight.dim(1), s.weight.dim(2),
                                 s.weight.dim(3), w)
            : PackQGemmWeights(path, s.weight.dim(1), oc, w, s.weight.dim(1),
                               /*transposed=*/true);
    if (!packed.ok()) {
      status =
          absl::Status(packed.status().code(),
                       absl::StrCat(s.name, ": ", packed.status().message()));
      return;
    }
    s.packed = *std::move(packed);
  });
  return status;
}

// The float32 weight and bias an int8 layer quantizes (a folded BatchNorm
// included); the bias may be undefined.
std::pair<Tensor, Tensor> FloatWeightAndBias(const Step& s) {
  autograd::NoGradGuard no_grad;
  if (s.kind == Kind::kConv) {
    const auto [w, b] =
        static_cast<const nn::Conv2d&>(*s.module).EffectiveWeightAndBias();
    return {w.data(), b.defined() ? b.data() : Tensor()};
  }
  const auto& linear = static_cast<const nn::Linear&>(*s.module);
  return {linear.weight().data(),
          linear.bias().defined() ? linear.bias().data() : Tensor()};
}

// The float32 layer of a step that is not a block. A convolution runs on
// its effective weights with the plan's ReLU (not the module's: Residual's
// conv2 is fused with the ReLU after the add).
autograd::Variable FloatStep(const Step& s, const autograd::Variable& x) {
  if (s.kind == Kind::kConv) {
    const auto& conv = static_cast<const nn::Conv2d&>(*s.module);
    const auto [w, b] = conv.EffectiveWeightAndBias();
    const nn::Conv2dOptions& o = conv.options();
    Conv2dParams p;
    p.stride_h = o.stride_h;
    p.stride_w = o.stride_w;
    p.pad_h = o.pad_h;
    p.pad_w = o.pad_w;
    return autograd::Conv2d(x, w, b, p, autograd::Variable(), s.relu);
  }
  autograd::Variable y = (*s.module)(x);
  return s.extra_relu ? autograd::Relu(y) : y;
}

Tensor Int32Scalar(int32_t v) {
  Tensor t = Tensor::Empty({}, DType::kInt32);
  *t.data<int32_t>() = v;
  return t;
}

// ---- uint8 kernels of the layers that run in either domain -----------------

// One output row or column of a pooling: the input span [begin, end)
// (inside the image) and the average's divisor along this dimension.
struct Window {
  int64_t begin, end, divisor;
};

std::vector<Window> PoolWindows(int64_t size, int64_t kernel, int64_t stride,
                                int64_t pad, bool count_pad) {
  std::vector<Window> out;
  for (int64_t i = 0; i < (size + 2 * pad - kernel) / stride + 1; ++i) {
    const int64_t begin = i * stride - pad, end = begin + kernel;
    const int64_t b = std::max<int64_t>(begin, 0), e = std::min(end, size);
    out.push_back({b, e, count_pad ? kernel : e - b});
  }
  return out;
}

std::vector<Window> AdaptiveWindows(int64_t size, int64_t out_size) {
  std::vector<Window> out;
  for (int64_t i = 0; i < out_size; ++i) {
    const int64_t b = i * size / out_size;
    const int64_t e = ((i + 1) * size + out_size - 1) / out_size;
    out.push_back({b, e, e - b});
  }
  return out;
}

// y [N, C, rows, cols] uint8 from x [N, C, H, W] uint8: y[n, c, i, j] =
// reduce(plane (n, c), its width, rows[i], cols[j]).
template <typename Reduce>
Tensor PoolU8(const Tensor& x, const std::vector<Window>& rows,
              const std::vector<Window>& cols, Reduce reduce) {
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  const int64_t oh = rows.size(), ow = cols.size();
  CHECK(oh >= 1 && ow >= 1)
      << "pooling: input " << x.shape() << " is smaller than the window";
  Tensor y = Tensor::Empty({n, c, oh, ow}, DType::kUint8);
  const uint8_t* in = x.data<uint8_t>();
  uint8_t* out = y.data<uint8_t>();
#pragma omp parallel for if (n * c > 1)
  for (int64_t plane = 0; plane < n * c; ++plane) {
    for (int64_t i = 0; i < oh; ++i) {
      for (int64_t j = 0; j < ow; ++j) {
        out[(plane * oh + i) * ow + j] =
            reduce(in + plane * h * w, w, rows[i], cols[j]);
      }
    }
  }
  return y;
}

// The largest element of each window: no requantization (tensor/qops.h).
Tensor MaxPoolU8(const Tensor& x, const Pool2dParams& p) {
  Tensor y = Tensor::Empty(Pool2dOutputShape("int8 max pooling", x.shape(), p),
                           DType::kUint8);
  QMaxPool2dU8(x.dim(0) * x.dim(1), x.dim(2), x.dim(3), p, x.data<uint8_t>(),
               y.data<uint8_t>());
  return y;
}

// The mean of each window in the input's scale: zero_point + round(sum of
// (q - zero_point) / divisor); padding is the real 0, the zero point.
Tensor AvgPoolU8(const Tensor& x, const std::vector<Window>& rows,
                 const std::vector<Window>& cols, int32_t zero_point) {
  return PoolU8(
      x, rows, cols,
      [zero_point](const uint8_t* xp, int64_t w, const Window& r,
                   const Window& c) {
        int64_t sum = 0;
        for (int64_t i = r.begin; i < r.end; ++i) {
          for (int64_t j = c.begin; j < c.end; ++j)
            sum += xp[i * w + j] - zero_point;
        }
        const double mean =
            std::nearbyint(static_cast<double>(sum) / (r.divisor * c.divisor));
        return static_cast<uint8_t>(std::clamp(mean + zero_point, 0.0, 255.0));
      });
}

Tensor AvgPoolStepU8(const nn::Module& m, const Tensor& x, int32_t zp) {
  const int64_t h = x.dim(2), w = x.dim(3);
  if (const auto* pool = dynamic_cast<const nn::AvgPool2d*>(&m)) {
    const Pool2dParams& p = pool->params();
    const bool pad = pool->count_include_pad();
    return AvgPoolU8(x, PoolWindows(h, p.kernel_h, p.stride_h, p.pad_h, pad),
                     PoolWindows(w, p.kernel_w, p.stride_w, p.pad_w, pad), zp);
  }
  if (const auto* pool = dynamic_cast<const nn::AdaptiveAvgPool2d*>(&m)) {
    return AvgPoolU8(x, AdaptiveWindows(h, pool->output_h()),
                     AdaptiveWindows(w, pool->output_w()), zp);
  }
  return AvgPoolU8(x, AdaptiveWindows(h, 1), AdaptiveWindows(w, 1), zp);
}

// An either-domain layer on uint8 data in scale `q` (which it keeps).
Tensor EitherStepU8(const Step& s, const Tensor& x, const QParams& q) {
  switch (s.kind) {
    case Kind::kMaxPool:
      return MaxPoolU8(x,
                       static_cast<const nn::MaxPool2d&>(*s.module).params());
    case Kind::kAvgPool:
      return AvgPoolStepU8(*s.module, x, q.zero_point);
    case Kind::kRelu: {
      Tensor y = Tensor::Empty(x.shape(), DType::kUint8);
      const uint8_t* in = x.data<uint8_t>();
      uint8_t* out = y.data<uint8_t>();
      const auto zp = static_cast<uint8_t>(q.zero_point);
      for (int64_t i = 0; i < x.numel(); ++i) out[i] = std::max(in[i], zp);
      return y;
    }
    case Kind::kFlatten: {
      const auto& f = static_cast<const nn::Flatten&>(*s.module);
      return x.Flatten(f.start(), f.end());
    }
    default:
      return x;
  }
}

QUint8Params Params(const QParams& q) { return {q.scale, q.zero_point}; }

Tensor RunChain(const std::vector<Step>& steps, Tensor t, bool* uint8,
                QParams* q);

// t (uint8, contiguous, this step's own) clamped to s.quant_max in place:
// reduce_range's 7 bits, so that every uint8 tensor of the model is within
// 0..127 (values beyond the calibrated range saturate there, as they do at
// 255 otherwise) and the avx2_u7 kernels take every call.
void ClampToQuantMax(const Step& s, Tensor* t) {
  if (s.quant_max >= 255) return;
  uint8_t* p = t->data<uint8_t>();
  const int64_t size = t->numel();
  const auto top = static_cast<uint8_t>(s.quant_max);
#pragma omp parallel for schedule(static) if (size > (1 << 18))
  for (int64_t i = 0; i < size; ++i) p[i] = std::min(p[i], top);
}

// The step's input in uint8: t quantized with s.input (and clamped) when it
// arrives in float32, else t.
Tensor Uint8Input(const Step& s, const Tensor& t) {
  if (!s.quantize_input) return t.Contiguous();
  Tensor in = Quantize(t, s.input);
  ClampToQuantMax(s, &in);
  return in;
}

// Block `s` on t (as RunStep): each branch from its uint8 input, then the
// int8 add or concatenation of their outputs in the block's QParams.
Tensor RunBlock(const Step& s, const Tensor& t, bool* uint8, QParams* q) {
  const Tensor in = Uint8Input(s, t);
  CHECK(in.dtype() == DType::kUint8) << s.name << ": input not uint8";
  const QParams in_q = s.quantize_input ? s.input : *q;
  std::vector<Tensor> parts;
  std::vector<QParams> part_q;
  for (const std::vector<Step>& branch : s.branches) {
    bool branch_uint8 = true;
    QParams bq = in_q;
    parts.push_back(RunChain(branch, in, &branch_uint8, &bq).Contiguous());
    part_q.push_back(bq);
    CHECK(branch_uint8 && parts.back().dtype() == DType::kUint8)
        << s.name << ": path " << parts.size() - 1 << " is not uint8";
  }
  Tensor out;
  if (s.kind == Kind::kAdd) {
    CHECK(parts.size() == 2 && parts[0].shape() == parts[1].shape())
        << s.name << " (" << s.module->Describe() << "): the body gives "
        << parts[0].shape() << " but the shortcut " << parts[1].shape();
    out = Tensor::Empty(parts[0].shape(), DType::kUint8);
    QAddU8(out.numel(), parts[0].data<uint8_t>(), Params(part_q[0]),
           parts[1].data<uint8_t>(), Params(part_q[1]), Params(s.output),
           s.relu, out.data<uint8_t>());
  } else {
    const Shape& first = parts[0].shape();
    int64_t channels = 0;
    std::vector<QConcatPart> concat;
    for (size_t i = 0; i < parts.size(); ++i) {
      const Shape& shape = parts[i].shape();
      CHECK(shape.rank() == 4 && shape[0] == first[0] && shape[2] == first[2] &&
            shape[3] == first[3])
          << s.name << " (" << s.module->Describe() << "): path " << i
          << " gives " << shape << ", path 0 " << first;
      channels += shape[1];
      concat.push_back({parts[i].data<uint8_t>(), shape[1], Params(part_q[i])});
    }
    out =
        Tensor::Empty({first[0], channels, first[2], first[3]}, DType::kUint8);
    QConcatChannelsU8(first[0], first[2] * first[3], concat, Params(s.output),
                      out.data<uint8_t>());
  }
  ClampToQuantMax(s, &out);
  *uint8 = true;
  *q = s.output;
  return out;
}

// Runs layer `s` on t: uint8 in scale *q when *uint8, else float32; sets
// *uint8 and *q for the output.
Tensor RunStep(const Step& s, const Tensor& t, bool* uint8, QParams* q) {
  if (IsBlock(s.kind)) return RunBlock(s, t, uint8, q);
  if (IsEither(s.kind)) {
    return *uint8 ? EitherStepU8(s, t, *q)
                  : FloatStep(s, autograd::Variable(t)).data();
  }
  if (s.kind == Kind::kFloat) {
    const Tensor in = *uint8 ? Dequantize(t, *q) : t;
    *uint8 = false;
    return FloatStep(s, autograd::Variable(in)).data();
  }
  const Tensor in = Uint8Input(s, t);
  CHECK(in.dtype() == DType::kUint8) << s.name << ": input not uint8";
  if (s.kind == Kind::kBatchNorm) {
    const int64_t c = static_cast<int64_t>(
        (s.uint8_output ? s.table_u8.size() : s.table_f32.size()) / 256);
    CHECK(in.rank() == 4 && in.dim(1) == c)
        << s.name << " (" << s.module->Describe() << "): expected input [N, "
        << c << ", H, W], got " << in.shape();
    Tensor out = Tensor::Empty(
        in.shape(), s.uint8_output ? DType::kUint8 : DType::kFloat32);
    const int64_t planes = in.dim(0) * c, plane = in.dim(2) * in.dim(3);
    const uint8_t* x = in.data<uint8_t>();
#pragma omp parallel for if (planes * plane > (1 << 16))
    for (int64_t p = 0; p < planes; ++p) {
      const int64_t offset = (p % c) * 256;
      if (s.uint8_output) {
        const uint8_t* table = s.table_u8.data() + offset;
        uint8_t* y = out.data<uint8_t>() + p * plane;
        for (int64_t i = 0; i < plane; ++i) y[i] = table[x[p * plane + i]];
      } else {
        const float* table = s.table_f32.data() + offset;
        float* y = out.data<float>() + p * plane;
        for (int64_t i = 0; i < plane; ++i) y[i] = table[x[p * plane + i]];
      }
    }
    *uint8 = s.uint8_output;
    *q = s.output;
    return out;
  }
  QRequantization rq;
  rq.output = s.uint8_output ? QOutputType::kUint8 : QOutputType::kFloat;
  rq.scale = s.multipliers.data();
  rq.bias = s.bias.data<int32_t>();
  rq.zero_point = s.output.zero_point;
  rq.relu = s.relu;
  const DType out_dtype = s.uint8_output ? DType::kUint8 : DType::kFloat32;
  const int64_t oc = s.packed.channels(), n = in.dim(0);
  absl::Status status;
  Tensor out;
  if (s.kind == Kind::kConv) {
    const auto& o = static_cast<const nn::Conv2d&>(*s.module).options();
    CHECK(in.rank() == 4 && in.dim(1) == o.in_channels)
        << s.name << " (" << s.module->Describe() << "): expected input [N, "
        << o.in_channels << ", H, W], got " << in.shape();
    const absl::StatusOr<int64_t> oh =
        QConv2dOutSize(in.dim(2), o.kernel_h, o.stride_h, o.pad_h);
    const absl::StatusOr<int64_t> ow =
        QConv2dOutSize(in.dim(3), o.kernel_w, o.stride_w, o.pad_w);
    CHECK(oh.ok() && ow.ok())
        << s.name << ": input " << in.shape() << " is smaller than the kernel";
    out = Tensor::Empty({n, oc, *oh, *ow}, out_dtype);
    QConv2dParams p;
    p.stride_h = o.stride_h;
    p.stride_w = o.stride_w;
    p.pad_h = o.pad_h;
    p.pad_w = o.pad_w;
    status = QConv2d(n, in.dim(2), in.dim(3), in.data<uint8_t>(),
                     s.input.zero_point, s.packed, p, rq, out.raw_data());
  } else {
    CHECK(in.rank() == 2 && in.dim(1) == s.packed.k())
        << s.name << " (" << s.module->Describe() << "): expected input [N, "
        << s.packed.k() << "], got " << in.shape();
    out = Tensor::Empty({n, oc}, out_dtype);
    status = QGemm(n, in.data<uint8_t>(), in.dim(1), s.input.zero_point,
                   s.packed, rq, out.raw_data(), oc);
  }
  // Every argument was checked when the model was made.
  CHECK(status.ok()) << s.name << ": " << status;
  if (s.uint8_output) ClampToQuantMax(s, &out);
  *uint8 = s.uint8_output;
  *q = s.output;
  return out;
}

// The steps in turn on t (as RunStep).
Tensor RunChain(const std::vector<Step>& steps, Tensor t, bool* uint8,
                QParams* q) {
  for (const Step& s : steps) {
    const auto start = std::chrono::steady_clock::now();
    t = RunStep(s, t, uint8, q);
    VLOG(1) << s.name << " " << s.module->Describe() << ": "
            << std::chrono::duration<double, std::milli>(
                   std::chrono::steady_clock::now() - start)
                   .count()
            << " ms";
  }
  return t;
}

// Observes, for calibration, every tensor that becomes uint8: the float32
// inputs that are quantized, and the uint8 outputs whose QParams are
// chosen (not those written in their concatenation's).
struct Observers {
  explicit Observers(const QuantizeOptions& options) : options(options) {}
  RangeObserver& Of(std::map<const Step*, RangeObserver>& m, const Step& s) {
    return m.try_emplace(&s, options.calibration, options.percentile)
        .first->second;
  }
  QuantizeOptions options;
  std::map<const Step*, RangeObserver> input, output;
};

// The float32 model along the plan's steps from v, observing.
autograd::Variable Calibrate(const std::vector<Step>& steps,
                             autograd::Variable v, Observers* obs) {
  for (const Step& s : steps) {
    if (s.quantize_input) obs->Of(obs->input, s).Observe(v.data());
    if (IsBlock(s.kind)) {
      std::vector<autograd::Variable> outs;
      for (const std::vector<Step>& branch : s.branches) {
        outs.push_back(Calibrate(branch, v, obs));
      }
      if (s.kind == Kind::kAdd) {
        v = outs[0] + outs[1];
        if (s.relu) v = autograd::Relu(v);
      } else {
        v = autograd::Concat(outs, /*axis=*/1);
      }
      obs->Of(obs->output, s).Observe(v.data());
      continue;
    }
    v = FloatStep(s, v);
    if (s.uint8_output && !s.output_from_block) {
      obs->Of(obs->output, s).Observe(v.data());
    }
  }
  return v;
}

}  // namespace

QuantizedModel::~QuantizedModel() = default;

autograd::Variable QuantizedModel::Forward(const autograd::Variable& x) {
  autograd::NoGradGuard no_grad;
  Tensor t = x.data();
  bool uint8 = false;
  QParams q;  // t's, when uint8
  t = RunChain(steps_, t, &uint8, &q);
  if (uint8) t = Dequantize(t, q);
  return autograd::Variable(t);
}

std::string QuantizedModel::Describe() const {
  int64_t int8 = 0;
  const std::vector<OpPlan> ops = Ops();
  for (const OpPlan& op : ops) int8 += op.int8;
  return absl::StrCat("QuantizedModel(int8: ", int8, " of ", ops.size(),
                      " layers)");
}

std::vector<OpPlan> QuantizedModel::Ops() const {
  std::vector<OpPlan> ops;
  ForEachStep(steps_, [&ops](const Step& s) {
    OpPlan op{s.name, s.module->Describe(), TakesUint8(s.kind) || s.uint8_input,
              ""};
    if (s.kind == Kind::kAdd) {
      op.how = absl::StrCat(
          "int8 add", s.quantize_input ? " (float32 input quantized)" : "",
          ", both parts requantized", s.relu ? ", ReLU fused" : "",
          ", uint8 out");
    } else if (s.kind == Kind::kConcat) {
      int64_t written = 0;  // paths whose last int8 layer writes in its scale
      for (const std::vector<Step>& branch : s.branches) {
        for (const Step& b : branch) written += b.output_from_block;
      }
      op.how = absl::StrCat(
          "int8 concat", s.quantize_input ? " (float32 input quantized)" : "",
          " of ", s.branches.size(), " parts (", written, " written in its ",
          "scale, ", s.branches.size() - written, " requantized), uint8 out");
    } else if (s.kind == Kind::kBatchNorm) {
      op.how =
          absl::StrCat("uint8 BatchNorm2d (a table per channel)",
                       s.quantize_input ? " (float32 input quantized)" : "",
                       s.relu ? ", ReLU fused" : "",
                       s.uint8_output ? ", uint8 out" : ", float32 out");
    } else if (IsInt8(s.kind)) {
      op.how =
          absl::StrCat(s.kind == Kind::kConv ? "int8 conv" : "int8 linear",
                       s.quantize_input ? " (float32 input quantized)" : "",
                       s.folds_bn ? ", BatchNorm2d folded" : "",
                       s.relu ? ", ReLU fused" : "",
                       s.uint8_output ? ", uint8 out" : ", float32 out");
    } else if (IsEither(s.kind)) {
      op.how = s.uint8_input ? "uint8" : "float32 (its input is float32)";
    } else {
      op.how = "float32 fallback: no int8 kernel";
    }
    if (s.output_from_block) op.how += " (its concatenation's scale)";
    ops.push_back(std::move(op));
  });
  return ops;
}

namespace {

std::vector<PlanStep> PlanOf(const std::vector<Step>& steps) {
  std::vector<PlanStep> out;
  for (const Step& s : steps) {
    PlanStep p;
    switch (s.kind) {
      case Kind::kConv:
        p.kind = PlanStep::Kind::kInt8Conv;
        break;
      case Kind::kLinear:
        p.kind = PlanStep::Kind::kInt8Linear;
        break;
      case Kind::kBatchNorm:
        p.kind = PlanStep::Kind::kUint8BatchNorm;
        break;
      case Kind::kAdd:
        p.kind = PlanStep::Kind::kAdd;
        break;
      case Kind::kConcat:
        p.kind = PlanStep::Kind::kConcat;
        break;
      case Kind::kFloat:
        p.kind = PlanStep::Kind::kFloat;
        break;
      default:
        p.kind = PlanStep::Kind::kEither;
    }
    p.name = s.name;
    p.module = s.module;
    p.relu = s.relu;
    p.quantize_input = s.quantize_input;
    p.uint8_output = s.uint8_output || IsBlock(s.kind);
    p.uint8_input = s.uint8_input;
    p.input = s.input;
    p.output = s.output;
    p.weight = s.weight;
    p.weight_scale = s.weight_scale;
    p.bias = s.bias;
    for (const std::vector<Step>& branch : s.branches) {
      p.branches.push_back(PlanOf(branch));
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace

std::vector<PlanStep> QuantizedModel::Plan() const { return PlanOf(steps_); }

std::map<std::string, Tensor> QuantizedModel::QuantizedStateDict() const {
  std::map<std::string, Tensor> out;
  ForEachStep(steps_, [&out](const Step& s) {
    if (s.kind == Kind::kFloat || s.kind == Kind::kBatchNorm) {
      for (const auto& [key, t] : s.module->StateDict()) {
        out[Join(s.name, key)] = t;
      }
    }
    if (IsInt8(s.kind)) {
      out[Join(s.name, "weight")] = s.weight;
      out[Join(s.name, "weight_scale")] = s.weight_scale;
      out[Join(s.name, "bias")] = s.bias;
    }
    if (!TakesUint8(s.kind)) return;
    if (s.quantize_input) {
      out[Join(s.name, "input_scale")] = Tensor::Scalar(s.input.scale);
      out[Join(s.name, "input_zero_point")] = Int32Scalar(s.input.zero_point);
    }
    if ((s.uint8_output && !s.output_from_block) || IsBlock(s.kind)) {
      out[Join(s.name, "output_scale")] = Tensor::Scalar(s.output.scale);
      out[Join(s.name, "output_zero_point")] = Int32Scalar(s.output.zero_point);
    }
  });
  return out;
}

absl::StatusOr<std::shared_ptr<QuantizedModel>> QuantizeModel(
    std::shared_ptr<nn::Module> model,
    const std::vector<Tensor>& calibration_batches,
    const QuantizeOptions& options) {
  if (calibration_batches.empty()) {
    return absl::InvalidArgumentError(
        "int8 quantization needs at least one calibration batch");
  }
  absl::StatusOr<std::vector<Step>> plan = BuildPlan(model);
  if (!plan.ok()) return plan.status();
  std::vector<Step>& steps = *plan;

  // Calibration: the float model on each batch, observing every tensor
  // that becomes uint8.
  Observers obs(options);
  {
    autograd::NoGradGuard no_grad;
    for (const Tensor& batch : calibration_batches) {
      Calibrate(steps, autograd::Variable(batch), &obs);
    }
  }
  const int32_t quant_max = options.reduce_range ? kReducedQuantMax : 255;
  ForEachStep(steps, [&obs, quant_max](Step& s) {
    if (!TakesUint8(s.kind)) return;
    if (s.quantize_input) s.input = obs.Of(obs.input, s).Choose(quant_max);
    if ((s.uint8_output && !s.output_from_block) || IsBlock(s.kind)) {
      s.output = obs.Of(obs.output, s).Choose(quant_max);
    }
    if (!IsInt8(s.kind)) return;
    PerChannelWeights w = QuantizePerChannel(FloatWeightAndBias(s).first);
    s.weight = w.values;
    s.weight_scale = w.scales;
  });
  Propagate(steps, QParams());
  absl::Status status;
  ForEachStep(steps, [&status](Step& s) {
    if (!IsInt8(s.kind) || !status.ok()) return;
    const Tensor b = FloatWeightAndBias(s).second;
    const int64_t oc = s.weight.dim(0);
    s.bias = Tensor::Zeros({oc}, DType::kInt32);
    if (!b.defined()) return;
    const Tensor bc = b.Contiguous();
    const float* bf = bc.data<float>();
    const float* ws = s.weight_scale.data<float>();
    for (int64_t o = 0; o < oc; ++o) {
      const double q =
          std::nearbyint(bf[o] / (static_cast<double>(s.input.scale) * ws[o]));
      if (std::fabs(q) > kQGemmMaxBias) {
        status = absl::InvalidArgumentError(absl::StrCat(
            s.name, ": bias[", o, "] = ", bf[o], " is ", q,
            " steps of its int32 scale, beyond the int8 kernels' 2^30"));
        return;
      }
      s.bias.data<int32_t>()[o] = static_cast<int32_t>(q);
    }
  });
  if (!status.ok()) return status;
  if (absl::Status s = Pack(steps, options.reduce_range, options.path);
      !s.ok()) {
    return s;
  }
  std::shared_ptr<QuantizedModel> q(new QuantizedModel());
  q->float_model_ = std::move(model);
  q->steps_ = std::move(steps);
  q->reduce_range_ = options.reduce_range;
  return q;
}

absl::StatusOr<std::shared_ptr<QuantizedModel>> QuantizedModelFrom(
    std::shared_ptr<nn::Module> model,
    const std::map<std::string, Tensor>& state, bool reduce_range) {
  absl::StatusOr<std::vector<Step>> plan = BuildPlan(model);
  if (!plan.ok()) return plan.status();
  std::vector<Step>& steps = *plan;
  std::vector<std::string> errors;
  std::set<std::string> used;
  // The tensor `key` if it has `dtype` and `shape`; else records why not.
  const auto take = [&](const std::string& key, DType dtype,
                        const Shape& shape) -> Tensor {
    used.insert(key);
    const auto it = state.find(key);
    if (it == state.end()) {
      errors.push_back(absl::StrCat(key, ": missing"));
      return Tensor();
    }
    const Tensor& t = it->second;
    if (t.dtype() != dtype || t.shape() != shape) {
      errors.push_back(absl::StrCat(
          key, ": expected ", DTypeName(dtype), " ", shape.ToString(), ", got ",
          DTypeName(t.dtype()), " ", t.shape().ToString()));
      return Tensor();
    }
    return t.Contiguous();
  };
  const auto take_qparams = [&](const std::string& prefix, QParams* q) {
    const Tensor scale = take(prefix + "_scale", DType::kFloat32, Shape{});
    const Tensor zp = take(prefix + "_zero_point", DType::kInt32, Shape{});
    if (!scale.defined() || !zp.defined()) return;
    q->scale = *scale.data<float>();
    q->zero_point = *zp.data<int32_t>();
    if (absl::Status s =
            CheckQParams(*q, prefix + "_scale", prefix + "_zero_point");
        !s.ok()) {
      errors.emplace_back(s.message());
    } else if (reduce_range && q->zero_point > kReducedQuantMax) {
      errors.push_back(absl::StrCat(
          prefix, "_zero_point: zero point ", q->zero_point, " is above ",
          kReducedQuantMax, ", outside the 7-bit range ", kReduceRangeKey,
          " says the activations were calibrated to"));
    }
  };
  ForEachStep(steps, [&](Step& s) {
    if (s.kind == Kind::kFloat || s.kind == Kind::kBatchNorm) {
      std::map<std::string, Tensor> own;
      for (const auto& [key, unused] : s.module->StateDict()) {
        const std::string full = Join(s.name, key);
        used.insert(full);
        if (const auto it = state.find(full); it != state.end()) {
          own[key] = it->second;
        }
      }
      if (absl::Status st = s.module->LoadStateDict(own); !st.ok()) {
        errors.push_back(absl::StrCat(s.name, " (", s.module->Describe(),
                                      ", float32): ", st.message()));
      }
    }
    if (IsBlock(s.kind)) {
      if (s.quantize_input) take_qparams(Join(s.name, "input"), &s.input);
      take_qparams(Join(s.name, "output"), &s.output);
    }
    if (s.kind == Kind::kBatchNorm) {
      if (s.quantize_input) take_qparams(Join(s.name, "input"), &s.input);
      if (s.uint8_output && !s.output_from_block) {
        take_qparams(Join(s.name, "output"), &s.output);
      }
    }
    if (!IsInt8(s.kind)) return;
    const Tensor w = FloatWeightAndBias(s).first;
    const int64_t oc = w.dim(0);
    s.weight = take(Join(s.name, "weight"), DType::kInt8, w.shape());
    s.weight_scale = take(Join(s.name, "weight_scale"), DType::kFloat32, {oc});
    s.bias = take(Join(s.name, "bias"), DType::kInt32, {oc});
    if (s.weight_scale.defined()) {
      const float* ws = s.weight_scale.data<float>();
      for (int64_t o = 0; o < oc; ++o) {
        if (!(std::isfinite(ws[o]) && ws[o] > 0)) {
          errors.push_back(absl::StrCat(Join(s.name, "weight_scale"), "[", o,
                                        "]: scale ", ws[o],
                                        " must be finite and > 0"));
          break;
        }
      }
    }
    if (s.quantize_input) take_qparams(Join(s.name, "input"), &s.input);
    if (s.uint8_output && !s.output_from_block) {
      take_qparams(Join(s.name, "output"), &s.output);
    }
  });
  std::vector<std::string> unexpected;
  for (const auto& [key, unused] : state) {
    if (used.count(key) == 0) unexpected.push_back(key);
  }
  if (!unexpected.empty()) {
    errors.push_back(absl::StrCat("unexpected tensors [",
                                  absl::StrJoin(unexpected, ", "),
                                  "] (not of this model's int8 plan)"));
  }
  if (!errors.empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(errors, "; "));
  }
  Propagate(steps, QParams());
  if (absl::Status s = Pack(steps, reduce_range, std::nullopt); !s.ok()) {
    return s;
  }
  std::shared_ptr<QuantizedModel> q(new QuantizedModel());
  q->float_model_ = std::move(model);
  q->steps_ = std::move(steps);
  q->reduce_range_ = reduce_range;
  return q;
}

absl::Status SaveQuantizedModel(
    const QuantizedModel& model, const std::string& model_name,
    int64_t input_size,
    const std::map<std::string, std::string>& extra_metadata,
    const std::string& path) {
  SafetensorsFile file;
  file.tensors = model.QuantizedStateDict();
  file.metadata = extra_metadata;
  file.metadata[kQuantizationKey] = "int8";
  file.metadata["model"] = model_name;
  file.metadata["input_size"] = absl::StrCat(input_size);
  file.metadata[kReduceRangeKey] = model.reduce_range() ? "true" : "false";
  return SaveSafetensors(path, file);
}

bool ReduceRangeHelps() { return DefaultQGemmPath() == QGemmPath::kAvx2; }

absl::StatusOr<bool> ParseReduceRange(absl::string_view value) {
  if (value == "true") return true;
  if (value == "false") return false;
  if (value == "auto") return ReduceRangeHelps();
  return absl::InvalidArgumentError(absl::StrCat(
      "reduce_range \"", value, "\": must be auto, true or false"));
}

bool IsQuantized(const SafetensorsFile& file) {
  return file.metadata.count(kQuantizationKey) > 0;
}

absl::StatusOr<LoadedQuantizedModel> LoadQuantizedModel(
    const SafetensorsFile& file, const std::string& source) {
  if (!IsQuantized(file)) {
    return absl::FailedPreconditionError(absl::StrCat(
        source,
        " is a float32 checkpoint, not an int8 one (its metadata has "
        "no \"",
        kQuantizationKey,
        "\"); quantize it first with "
        "//tools:quantize --checkpoint=",
        source));
  }
  const std::string& kind = file.metadata.at(kQuantizationKey);
  if (kind != "int8") {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": ", kQuantizationKey, " is \"", kind, "\", expected int8"));
  }
  const auto model_it = file.metadata.find("model");
  if (model_it == file.metadata.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": its metadata names no model"));
  }
  absl::StatusOr<models::ModelSpec> spec = models::FindModel(model_it->second);
  if (!spec.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", spec.status().message()));
  }
  int64_t size = 0;
  const auto size_it = file.metadata.find("input_size");
  if (size_it == file.metadata.end() ||
      !absl::SimpleAtoi(size_it->second, &size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": metadata input_size missing or not an integer"));
  }
  if (absl::Status s = models::CheckInputSize(
          spec->name, size, spec->min_input_size, spec->max_input_size);
      !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", s.message()));
  }
  // Absent in checkpoints from before reduce_range: 0..255.
  bool reduce_range = false;
  if (const auto it = file.metadata.find(kReduceRangeKey);
      it != file.metadata.end()) {
    if (it->second != "true" && it->second != "false") {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": ", kReduceRangeKey, " is \"", it->second,
                       "\", expected true or false"));
    }
    reduce_range = it->second == "true";
  }
  absl::StatusOr<std::shared_ptr<nn::Module>> net = spec->make(size);
  if (!net.ok()) return net.status();
  absl::StatusOr<std::shared_ptr<QuantizedModel>> q =
      QuantizedModelFrom(*std::move(net), file.tensors, reduce_range);
  if (!q.ok()) {
    return absl::Status(q.status().code(),
                        absl::StrCat(source, ": ", q.status().message()));
  }
  return LoadedQuantizedModel{spec->name, size, *std::move(q)};
}

absl::StatusOr<LoadedQuantizedModel> LoadQuantizedModel(
    const std::string& path) {
  absl::StatusOr<SafetensorsFile> file = LoadSafetensors(path);
  if (!file.ok()) return file.status();
  return LoadQuantizedModel(*file, path);
}

}  // namespace dive::quant
