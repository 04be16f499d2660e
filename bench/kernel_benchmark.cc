// Speed of the kernels the zoo's training steps spend their time in, at the
// shapes the models run at in bench/model_benchmark.cc:
//
//   bazel run //bench:kernel_benchmark
//   bazel run //bench:kernel_benchmark -- --benchmark_filter=Conv2d
//
//   BM_Conv2d{Forward,BackwardInput,BackwardWeight}/<layer>/threads:T
//       tensor/conv.h; "FLOPS" counter = 2 * N * OC * C * KH * KW * OH * OW
//       per call (the same for all three), in FLOP/s.
//   BM_Conv2dBackwardRelu/<layer>/(fused|separate)/bf16/threads:T
//       a conv + ReLU layer's whole backward under bf16 matmuls: the input,
//       weight and bias gradients in one Conv2dBackward call, or as
//       ops::ReluBackward and the three separate functions; FLOPS counts
//       the two GEMMs' 4 * N * OC * C * KH * KW * OH * OW per call.
//   BM_Conv2dChain/<block>/(chain|one_by_one)/bf16/threads:T
//       a NiN block's three convolutions with ReLU (tensor/conv.h) under
//       bf16 matmuls, as one Conv2dChainForward or as Conv2dForward calls
//       with bf16 outputs between them; FLOPS counts the three.
//   BM_MaxPool2d{Forward,Backward}/<layer>[/bf16[/channels_last]]/threads:T
//   BM_AvgPool2d{Forward,Backward}/<layer>/threads:T
//   BM_BatchNorm{TrainForward,Backward}/<layer>[/bf16[/channels_last]]/threads:T
//       channels_last: x, dy, y and dx channels-last (tensor/memory_format.h)
//   BM_Add/<elements>/threads:T, BM_Relu/<elements>/threads:T
//       bytes_per_second counts every tensor read and written once.
//   BM_LinearForward/<layer>/(frozen|per_call)/(fp32|bf16)/threads:T
//       tensor/linear.h at AlexNet's and VGG-11/4's fully connected shapes
//       (batch 64), with weights frozen (Tensor::Frozen: packed once, what
//       nn::Module::Freeze gives inference) or packed at each call; FLOPS =
//       2 * batch * in * out per call.
//   BM_SoftmaxCrossEntropy/<batch>/threads:T
//       autograd forward + backward of the loss on [batch, 10] logits;
//       items_per_second is examples/s.
//
// T is 1 and all cores (Register, bench/registration.h). BM_PeakFma/1
// (tensor/peak/peak.h) is the machine's single-core FMA peak, measured in the
// same run.

#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "bench/registration.h"
#include "benchmark/benchmark.h"
#include "tensor/batch_norm.h"
#include "tensor/conv.h"
#include "tensor/gemm.h"
#include "tensor/linear.h"
#include "tensor/memory_format.h"
#include "tensor/ops.h"
#include "tensor/pool.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::bench {
namespace {

int64_t Bytes(const Tensor& t) {
  return t.numel() * static_cast<int64_t>(DTypeSize(t.dtype()));
}

// ---- Convolution
// -------------------------------------------------------------

struct ConvShape {
  const char* name;
  int64_t n, c, h, w, oc, k, stride, pad;
};

// The layers of the zoo at their bench resolution and batch.
const ConvShape kConvShapes[] = {
    {"lenet_conv1", 256, 1, 28, 28, 6, 5, 1, 2},
    {"lenet_conv2", 256, 6, 14, 14, 16, 5, 1, 0},
    {"alexnet96_conv2", 64, 96, 10, 10, 256, 5, 1, 2},
    {"alexnet96_conv4", 64, 384, 4, 4, 384, 3, 1, 1},
    {"vgg96_block2", 64, 16, 48, 48, 32, 3, 1, 1},
    {"resnet96_conv1", 32, 1, 96, 96, 64, 7, 2, 3},
    {"resnet96_b2", 32, 64, 24, 24, 64, 3, 1, 1},
    {"resnet96_b3", 32, 128, 12, 12, 128, 3, 1, 1},
    {"resnet96_b5", 32, 512, 3, 3, 512, 3, 1, 1},
    {"googlenet96_1x1", 32, 192, 12, 12, 64, 1, 1, 0},
    {"nin96_conv1", 64, 1, 96, 96, 96, 11, 4, 0},
    {"nin96_1x1", 64, 96, 22, 22, 96, 1, 1, 0},
    {"nin96_conv2", 64, 96, 10, 10, 256, 5, 1, 2},
};

enum class ConvPass { kForward, kBackwardInput, kBackwardWeight };

void RunConv(benchmark::State& state, const ConvShape& s, ConvPass pass) {
  Generator gen(1);
  const Tensor x = gen.Uniform({s.n, s.c, s.h, s.w}, -1, 1);
  const Tensor w = gen.Uniform({s.oc, s.c, s.k, s.k}, -0.1f, 0.1f);
  const Tensor b = gen.Uniform({s.oc}, -0.1f, 0.1f);
  Conv2dParams p;
  p.stride_h = p.stride_w = s.stride;
  p.pad_h = p.pad_w = s.pad;
  const int64_t oh = ConvOutSize(s.h, s.k, s.stride, s.pad);
  const int64_t ow = ConvOutSize(s.w, s.k, s.stride, s.pad);
  const Tensor dy = gen.Uniform({s.n, s.oc, oh, ow}, -1, 1);
  for (auto _ : state) {
    Tensor out;
    switch (pass) {
      case ConvPass::kForward:
        out = Conv2dForward(x, w, b, p);
        break;
      case ConvPass::kBackwardInput:
        out = Conv2dBackwardInput(dy, w, x.shape(), p);
        break;
      case ConvPass::kBackwardWeight:
        out = Conv2dBackwardWeight(dy, x, w.shape(), p);
        break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  const double flops = 2.0 * s.n * s.oc * s.c * s.k * s.k * oh * ow;
  state.counters["FLOPS"] = benchmark::Counter(flops * state.iterations(),
                                               benchmark::Counter::kIsRate);
}

void RunConvBackwardRelu(benchmark::State& state, const ConvShape& s,
                         bool fused) {
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  Generator gen(1);
  const Tensor x = gen.Uniform({s.n, s.c, s.h, s.w}, -1, 1);
  const Tensor w = gen.Uniform({s.oc, s.c, s.k, s.k}, -0.1f, 0.1f);
  Conv2dParams p;
  p.stride_h = p.stride_w = s.stride;
  p.pad_h = p.pad_w = s.pad;
  const int64_t oh = ConvOutSize(s.h, s.k, s.stride, s.pad);
  const int64_t ow = ConvOutSize(s.w, s.k, s.stride, s.pad);
  const Tensor dy = gen.Uniform({s.n, s.oc, oh, ow}, -1, 1);
  const Tensor y = gen.Uniform({s.n, s.oc, oh, ow}, -1, 1);  // half masked
  for (auto _ : state) {
    if (fused) {
      const Conv2dGrads g =
          Conv2dBackward(dy, y, x, x.shape(), w, w.shape(), p,
                         {.input = true, .weight = true, .bias = true});
      benchmark::DoNotOptimize(g.input.data());
    } else {
      const Tensor g = ops::ReluBackward(dy, y);
      const Tensor dx = Conv2dBackwardInput(g, w, x.shape(), p);
      const Tensor dw = Conv2dBackwardWeight(g, x, w.shape(), p);
      const Tensor db = Conv2dBackwardBias(g);
      benchmark::DoNotOptimize(dx.data());
    }
  }
  const double flops = 4.0 * s.n * s.oc * s.c * s.k * s.k * oh * ow;
  state.counters["FLOPS"] = benchmark::Counter(flops * state.iterations(),
                                               benchmark::Counter::kIsRate);
}

// NiN's three blocks at 96 px, batch 64: a KxK convolution, then two 1x1
// ones, each with ReLU, in evaluation under bf16 matmuls (the shape is the
// first convolution's; the 1x1 ones keep its output channels).
const ConvShape kChainShapes[] = {
    {"nin96_block1", 64, 1, 96, 96, 96, 11, 4, 0},
    {"nin96_block2", 64, 96, 10, 10, 256, 5, 1, 2},
    {"nin96_block3", 64, 256, 4, 4, 384, 3, 1, 1},
};

void RunConvChain(benchmark::State& state, const ConvShape& s, bool chain) {
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  Generator gen(1);
  const Tensor x = gen.Uniform({s.n, s.c, s.h, s.w}, -1, 1);
  std::vector<Conv2dStage> stages = {
      {gen.Uniform({s.oc, s.c, s.k, s.k}, -0.1f, 0.1f),
       gen.Uniform({s.oc}, -0.1f, 0.1f),
       {s.stride, s.stride, s.pad, s.pad},
       true}};
  for (int i = 0; i < 2; ++i) {
    stages.push_back({gen.Uniform({s.oc, s.oc, 1, 1}, -0.1f, 0.1f),
                      gen.Uniform({s.oc}, -0.1f, 0.1f), Conv2dParams(), true});
  }
  int64_t flops = 0, h = s.h, w = s.w;
  for (const Conv2dStage& stage : stages) {
    const Shape& ws = stage.weight.shape();
    h = ConvOutSize(h, ws[2], stage.params.stride_h, stage.params.pad_h);
    w = ConvOutSize(w, ws[3], stage.params.stride_w, stage.params.pad_w);
    flops += 2 * s.n * ws[0] * ws[1] * ws[2] * ws[3] * h * w;
  }
  for (auto _ : state) {
    if (chain) {
      benchmark::DoNotOptimize(
          Conv2dChainForward(x, stages, DType::kFloat32).raw_data());
    } else {
      Tensor y = x;
      for (size_t i = 0; i < stages.size(); ++i) {
        y = Conv2dForward(y, stages[i].weight, stages[i].bias, stages[i].params,
                          {.relu = true,
                           .dtype = i + 1 == stages.size() ? DType::kFloat32
                                                           : DType::kBfloat16});
      }
      benchmark::DoNotOptimize(y.raw_data());
    }
  }
  state.counters["FLOPS"] =
      benchmark::Counter(static_cast<double>(flops) * state.iterations(),
                         benchmark::Counter::kIsRate);
}

// ---- Pooling ---------------------------------------------------------------

struct PoolShape {
  const char* name;
  int64_t n, c, h, w;
  Pool2dParams p;
};

const PoolShape kMaxPoolShapes[] = {
    {"resnet96_b1", 32, 64, 48, 48, {3, 3, 2, 2, 1, 1}},
    {"alexnet96_pool1", 64, 96, 22, 22, {3, 3, 2, 2}},
    {"vgg96_block1", 64, 16, 96, 96, {2, 2, 2, 2}},
    // GoogLeNet's 3x3 stride 1 padding 1 branch in each Inception block.
    {"googlenet96_inception", 32, 192, 12, 12, {3, 3, 1, 1, 1, 1}},
};
const PoolShape kAvgPoolShapes[] = {
    {"lenet_pool1", 256, 6, 28, 28, {2, 2, 2, 2}},
    {"densenet96_transition1", 32, 192, 24, 24, {2, 2, 2, 2}},
};

// With `bf16`, x is bf16 (as under --precision=bf16); `format` is its
// layout, which y, argmax and dx follow.
void RunMaxPool(benchmark::State& state, const PoolShape& s, bool backward,
                bool bf16, MemoryFormat format) {
  const Tensor x =
      ToMemoryFormat(Generator(1)
                         .Uniform({s.n, s.c, s.h, s.w}, -1, 1)
                         .To(bf16 ? DType::kBfloat16 : DType::kFloat32),
                     format);
  Tensor argmax;
  const Tensor y = MaxPool2dForward(x, s.p, &argmax);
  const Tensor dy = ToMemoryFormat(Tensor::Ones(y.shape()), format);
  for (auto _ : state) {
    Tensor out = backward ? MaxPool2dBackward(dy, argmax, x.shape())
                          : MaxPool2dForward(x, s.p, &argmax);
    benchmark::DoNotOptimize(out.data());
  }
  // Forward: read x, write y and argmax; backward: read dy and argmax,
  // write dx.
  const int64_t bytes = Bytes(x) + Bytes(y) + Bytes(argmax);
  state.SetBytesProcessed(state.iterations() * bytes);
}

void RunAvgPool(benchmark::State& state, const PoolShape& s, bool backward) {
  const Tensor x = Generator(1).Uniform({s.n, s.c, s.h, s.w}, -1, 1);
  const Tensor y = AvgPool2dForward(x, s.p);
  const Tensor dy = Tensor::Ones(y.shape());
  for (auto _ : state) {
    Tensor out = backward ? AvgPool2dBackward(dy, x.shape(), s.p)
                          : AvgPool2dForward(x, s.p);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * (Bytes(x) + Bytes(y)));
}

// ---- Batch normalization
// -----------------------------------------------------

struct BnShape {
  const char* name;
  Shape shape;
};

const BnShape kBnShapes[] = {
    {"resnet96_stem", {32, 64, 48, 48}},  // larger than the L2 and L3
    {"resnet96_b2", {32, 64, 24, 24}},    {"resnet96_b4", {32, 256, 6, 6}},
    {"resnet96_b5", {32, 512, 3, 3}},  // 9-element planes
    {"densenet96_b1", {32, 160, 24, 24}}, {"bn_lenet_conv1", {256, 6, 24, 24}},
    {"bn_lenet_fc1", {256, 120}},
};

// With `bf16`, x and y are bf16 (activations stored at half the bytes).
void RunBatchNorm(benchmark::State& state, const BnShape& s, bool backward,
                  bool relu, bool bf16, MemoryFormat format) {
  const int64_t c = s.shape[1];
  const DType dtype = bf16 ? DType::kBfloat16 : DType::kFloat32;
  const Tensor x =
      ToMemoryFormat(Generator(1).Normal(s.shape, 1, 2).To(dtype), format);
  const Tensor gamma = Tensor::Ones({c}), beta = Tensor::Zeros({c});
  Tensor running_mean = Tensor::Zeros({c}), running_var = Tensor::Ones({c});
  BatchNormSaved saved;
  const Tensor y0 = BatchNormTrainForward(x, gamma, beta, running_mean,
                                          running_var, 0.1f, 1e-5f, &saved,
                                          relu);
  const Tensor dy = ToMemoryFormat(Generator(2).Normal(s.shape, 0, 1), format);
  for (auto _ : state) {
    if (backward) {
      Tensor dx, dgamma, dbeta;
      BatchNormBackward(dy, x, gamma, saved, &dx, &dgamma, &dbeta);
      benchmark::DoNotOptimize(dx.data());
    } else {
      Tensor y = BatchNormTrainForward(x, gamma, beta, running_mean,
                                       running_var, 0.1f, 1e-5f, &saved, relu,
                                       dtype);
      benchmark::DoNotOptimize(y.raw_data());
    }
  }
  // Forward reads x and writes y; backward reads dy and x and writes dx
  // (float32 gradients).
  const int64_t xb = x.numel() * (bf16 ? 2 : 4), gb = x.numel() * 4;
  state.SetBytesProcessed(state.iterations() *
                          (backward ? xb + 2 * gb : 2 * xb));
}

// ---- Linear
// -------------------------------------------------------------------

struct LinearShape {
  const char* name;
  int64_t batch, in, out;
};
constexpr LinearShape kLinearShapes[] = {
    {"alexnet_fc1_6400x4096", 64, 6400, 4096},
    {"fc2_4096x4096", 64, 4096, 4096},
    {"vgg_fc1_1152x4096", 64, 1152, 4096},
};

void RunLinear(benchmark::State& state, const LinearShape& s, bool frozen,
               bool bf16) {
  Generator gen(1);
  const Tensor x = gen.Normal({s.batch, s.in}, 0, 1);
  const Tensor w = gen.Normal({s.out, s.in}, 0, 0.01f);
  const Tensor b = gen.Normal({s.out}, 0, 1);
  const Tensor weights = frozen ? w.Frozen() : w;
  const ScopedMatmulPrecision precision(bf16 ? MatmulPrecision::kBfloat16
                                             : MatmulPrecision::kFloat32);
  LinearForward(x, weights, b);  // frozen: packs them, once, untimed
  for (auto _ : state) {
    Tensor y = LinearForward(x, weights, b);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["FLOPS"] =
      benchmark::Counter(2.0 * s.batch * s.in * s.out * state.iterations(),
                         benchmark::Counter::kIsRate);
}

// ---- Loss and elementwise
// ------------------------------------------------------

void RunSoftmaxCrossEntropy(benchmark::State& state, int64_t batch) {
  Generator gen(1);
  const Tensor logits = gen.Normal({batch, 10}, 0, 1);
  std::vector<int64_t> l(batch);
  for (int64_t& v : l) v = gen.NextIndex(10);
  const Tensor labels = Tensor::FromInt64Vector(l, {batch});
  for (auto _ : state) {
    autograd::Variable x(logits, /*requires_grad=*/true);
    autograd::Variable loss = SoftmaxCrossEntropy(x, labels);
    loss.Backward();
    benchmark::DoNotOptimize(x.grad().data());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void RunAdd(benchmark::State& state, int64_t n) {
  Generator gen(1);
  const Tensor a = gen.Uniform({n}, -1, 1), b = gen.Uniform({n}, -1, 1);
  for (auto _ : state) {
    Tensor c = ops::Add(a, b);
    benchmark::DoNotOptimize(c.data());
  }
  state.SetBytesProcessed(state.iterations() * 3 * n * 4);
}

void RunRelu(benchmark::State& state, int64_t n) {
  const Tensor a = Generator(1).Uniform({n}, -1, 1);
  for (auto _ : state) {
    Tensor c = ops::Relu(a);
    benchmark::DoNotOptimize(c.data());
  }
  state.SetBytesProcessed(state.iterations() * 2 * n * 4);
}

int RegisterAll() {
  struct ConvPassName {
    ConvPass pass;
    const char* name;
  };
  for (const ConvPassName& cp :
       {ConvPassName{ConvPass::kForward, "BM_Conv2dForward/"},
        ConvPassName{ConvPass::kBackwardInput, "BM_Conv2dBackwardInput/"},
        ConvPassName{ConvPass::kBackwardWeight, "BM_Conv2dBackwardWeight/"}}) {
    for (const ConvShape& s : kConvShapes) {
      Register(std::string(cp.name) + s.name,
               [s, cp](benchmark::State& st) { RunConv(st, s, cp.pass); });
    }
  }
  for (const ConvShape& s : kConvShapes) {
    for (bool fused : {true, false}) {
      Register(std::string("BM_Conv2dBackwardRelu/") + s.name +
                   (fused ? "/fused" : "/separate") + "/bf16",
               [s, fused](benchmark::State& st) {
                 RunConvBackwardRelu(st, s, fused);
               });
    }
  }
  for (const ConvShape& s : kChainShapes) {
    for (bool chain : {true, false}) {
      Register(
          std::string("BM_Conv2dChain/") + s.name +
              (chain ? "/chain" : "/one_by_one") + "/bf16",
          [s, chain](benchmark::State& st) { RunConvChain(st, s, chain); });
    }
  }
  for (bool backward : {false, true}) {
    const std::string pass = backward ? "Backward/" : "Forward/";
    for (const PoolShape& s : kMaxPoolShapes) {
      for (bool bf16 : {false, true}) {
        for (MemoryFormat format :
             {MemoryFormat::kContiguous, MemoryFormat::kChannelsLast}) {
          const bool last = format == MemoryFormat::kChannelsLast;
          if (last && !bf16) continue;
          Register("BM_MaxPool2d" + pass + s.name + (bf16 ? "/bf16" : "") +
                       (last ? "/channels_last" : ""),
                   [s, backward, bf16, format](benchmark::State& st) {
                     RunMaxPool(st, s, backward, bf16, format);
                   });
        }
      }
    }
    for (const PoolShape& s : kAvgPoolShapes) {
      Register(
          "BM_AvgPool2d" + pass + s.name,
          [s, backward](benchmark::State& st) { RunAvgPool(st, s, backward); });
    }
  }
  for (bool backward : {false, true}) {
    for (bool relu : {false, true}) {  // BatchNorm alone, or with its ReLU
      for (const BnShape& s : kBnShapes) {
        for (bool bf16 : {false, true}) {
          for (MemoryFormat format :
               {MemoryFormat::kContiguous, MemoryFormat::kChannelsLast}) {
            const bool last = format == MemoryFormat::kChannelsLast;
            if (last && (!bf16 || s.shape.rank() != 4)) continue;
            Register(std::string(backward ? "BM_BatchNormBackward"
                                          : "BM_BatchNormTrainForward") +
                         (relu ? "Relu/" : "/") + s.name +
                         (bf16 ? "/bf16" : "") + (last ? "/channels_last" : ""),
                     [s, backward, relu, bf16, format](benchmark::State& st) {
                       RunBatchNorm(st, s, backward, relu, bf16, format);
                     });
          }
        }
      }
    }
  }
  for (const LinearShape& s : kLinearShapes) {
    for (bool frozen : {true, false}) {
      for (bool bf16 : {false, true}) {
        Register(std::string("BM_LinearForward/") + s.name +
                     (frozen ? "/frozen" : "/per_call") +
                     (bf16 ? "/bf16" : "/fp32"),
                 [s, frozen, bf16](benchmark::State& st) {
                   RunLinear(st, s, frozen, bf16);
                 });
      }
    }
  }
  for (int64_t batch : {32, 256}) {
    Register(
        "BM_SoftmaxCrossEntropy/" + std::to_string(batch),
        [batch](benchmark::State& st) { RunSoftmaxCrossEntropy(st, batch); });
  }
  // 1.2M floats: LeNet's first activation at batch 256; 4M: past the L2.
  for (int64_t n : {256 * 6 * 28 * 28, 1 << 22}) {
    Register("BM_Add/" + std::to_string(n),
             [n](benchmark::State& st) { RunAdd(st, n); });
    Register("BM_Relu/" + std::to_string(n),
             [n](benchmark::State& st) { RunRelu(st, n); });
  }
  return 0;
}
const int registered = RegisterAll();  // at static initialization

}  // namespace
}  // namespace dive::bench
