// dive's convolution kernels (tensor/conv.h) beside oneDNN's (Debian's
// libdnnl 2.6, the library under PyTorch's CPU convolutions) on the zoo's
// convolution shapes, to choose kernels by measurement:
//
//   bazel run //bench:conv_library_benchmark -- --benchmark_counters_tabular=true
//   ONEDNN_VERBOSE=1 bazel run //bench:conv_library_benchmark --
//       --benchmark_filter=resnet96_b2/fwd   (which ISA and kernel oneDNN runs)
//
//   BM_Conv/<layer>/<pass>/<precision>/<impl>
//     pass       fwd (Conv2dForward; oneDNN forward_inference, with bias),
//                bwd_data (Conv2dBackwardInput), bwd_weights
//                (Conv2dBackwardWeight; no bias gradient on either side)
//     precision  f32, or bf16: bf16 operands with float32 sums and a float32
//                result (dive: ScopedMatmulPrecision kBfloat16, which rounds
//                the float32 tensors while packing; oneDNN: bf16 inputs,
//                f32 output)
//     impl       dive (its own kernels: ConvLibrary::kDive, tensor/conv.h)
//                dive_bf16_act (bf16 only): dive with the activations in
//                  bf16 (tensor/bf16.h), as the trainers store them under
//                  --precision=bf16: x bf16 in fwd and bwd_weights, and a
//                  bf16 output in fwd
//                dnnl_plain: oneDNN on the NCHW / OIHW float32 tensors dive
//                  holds; in bf16 the conversions of the inputs to bf16
//                  (reorders) are timed too
//                dnnl_blocked: the layouts oneDNN picks (format_tag::any),
//                  the primitive alone, inputs already reordered
//                dnnl_blocked_reorders: the same with the reorders from and
//                  to dive's NCHW float32 tensors timed, what dive would pay
//                  per call
//                dnnl_nhwc: activations and their gradients channels-last
//                  (NHWC) as the primitive reads and writes them, the
//                  weights in the layout oneDNN picks, their reorder from
//                  dive's OIHW float32 timed (weights change every training
//                  step): what a channels-last training step would pay
//
// Counters: FLOPS = 2 * N * OC * OH * OW * C * KH * KW per call (the same for
// the three passes), as a rate; rel_err = max |out - dive's float32 out| /
// max |dive's float32 out|, a check that both compute the same thing. The
// label is oneDNN's implementation (e.g. "jit:avx512_core"). Everything
// runs on kThreads OpenMP threads; outputs of oneDNN are preallocated, dive
// allocates its result per call (from its caching allocator).

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "benchmark/benchmark.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "tensor/conv.h"
#include "tensor/gemm.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::bench {
namespace {

constexpr int kThreads = 2;

struct ConvShape {
  const char* name;
  int64_t n, c, h, w, oc, k, stride, pad;
};

// The zoo's layers at 96x96 input and the batch sizes of
// bench/kernel_benchmark.cc (32 for ResNet, GoogLeNet and DenseNet, 64 for
// the others).
const ConvShape kShapes[] = {
    {"resnet96_conv1", 32, 1, 96, 96, 64, 7, 2, 3},
    {"resnet96_b2", 32, 64, 24, 24, 64, 3, 1, 1},
    {"resnet96_b3_down", 32, 64, 24, 24, 128, 3, 2, 1},
    {"resnet96_b3_1x1", 32, 64, 24, 24, 128, 1, 2, 0},
    {"resnet96_b4", 32, 256, 6, 6, 256, 3, 1, 1},
    {"resnet96_b5", 32, 512, 3, 3, 512, 3, 1, 1},
    {"alexnet96_conv1", 64, 1, 96, 96, 96, 11, 4, 1},
    {"alexnet96_conv2", 64, 96, 10, 10, 256, 5, 1, 2},
    {"alexnet96_conv3", 64, 256, 4, 4, 384, 3, 1, 1},
    {"vgg96_block1", 64, 1, 96, 96, 16, 3, 1, 1},
    {"vgg96_block2", 64, 16, 48, 48, 32, 3, 1, 1},
    {"vgg96_block3", 64, 32, 24, 24, 64, 3, 1, 1},
    {"nin96_conv1", 64, 1, 96, 96, 96, 11, 4, 0},
    {"nin96_1x1", 64, 96, 22, 22, 96, 1, 1, 0},
    {"nin96_conv2", 64, 96, 10, 10, 256, 5, 1, 2},
    {"nin96_1x1_256", 64, 256, 10, 10, 256, 1, 1, 0},
    {"nin96_conv3", 64, 256, 4, 4, 384, 3, 1, 1},
    {"nin96_1x1_384", 64, 384, 4, 4, 384, 1, 1, 0},
    {"googlenet96_b2_3x3", 32, 64, 24, 24, 192, 3, 1, 1},
    {"googlenet96_1x1", 32, 192, 12, 12, 64, 1, 1, 0},
    {"densenet96_conv", 32, 128, 24, 24, 32, 3, 1, 1},
    {"densenet96_transition", 32, 192, 24, 24, 96, 1, 1, 0},
};

enum class Pass { kForward, kBackwardData, kBackwardWeights };
enum class Impl {
  kDive,
  kDiveBf16Act,
  kPlain,
  kBlocked,
  kBlockedReorders,
  kNhwc
};

const char* PassName(Pass p) {
  switch (p) {
    case Pass::kForward:
      return "fwd";
    case Pass::kBackwardData:
      return "bwd_data";
    case Pass::kBackwardWeights:
      return "bwd_weights";
  }
  return "";
}

const char* ImplName(Impl i) {
  switch (i) {
    case Impl::kDive:
      return "dive";
    case Impl::kDiveBf16Act:
      return "dive_bf16_act";
    case Impl::kPlain:
      return "dnnl_plain";
    case Impl::kBlocked:
      return "dnnl_blocked";
    case Impl::kBlockedReorders:
      return "dnnl_blocked_reorders";
    case Impl::kNhwc:
      return "dnnl_nhwc";
  }
  return "";
}

// The tensors of one layer, in dive's layouts, and dive's float32 result of
// each pass as the reference.
struct Problem {
  explicit Problem(const ConvShape& s) : shape(s) {
    p.stride_h = p.stride_w = s.stride;
    p.pad_h = p.pad_w = s.pad;
    oh = ConvOutSize(s.h, s.k, s.stride, s.pad);
    ow = ConvOutSize(s.w, s.k, s.stride, s.pad);
    Generator gen(1);
    x = gen.Uniform({s.n, s.c, s.h, s.w}, -1, 1);
    w = gen.Uniform({s.oc, s.c, s.k, s.k}, -0.1f, 0.1f);
    b = gen.Uniform({s.oc}, -0.1f, 0.1f);
    dy = gen.Uniform({s.n, s.oc, oh, ow}, -1, 1);
    x_bf16 = x.To(DType::kBfloat16);
  }

  // With `bf16_act`, x is read in bf16 and the forward output written in it.
  Tensor RunDive(Pass pass, bool bf16_act = false) const {
    const Tensor& in = bf16_act ? x_bf16 : x;
    switch (pass) {
      case Pass::kForward:
        return Conv2dForward(
            in, w, b, p,
            {.dtype = bf16_act ? DType::kBfloat16 : DType::kFloat32});
      case Pass::kBackwardData:
        return Conv2dBackwardInput(dy, w, x.shape(), p);
      case Pass::kBackwardWeights:
        return Conv2dBackwardWeight(dy, in, w.shape(), p);
    }
    return Tensor();
  }

  double Flops() const {
    return 2.0 * shape.n * shape.oc * oh * ow * shape.c * shape.k * shape.k;
  }

  ConvShape shape;
  Conv2dParams p;
  int64_t oh, ow;
  Tensor x, w, b, dy, x_bf16;
};

// max |got - want| / max |want|.
double RelErr(const float* got, const Tensor& want) {
  const float* r = want.data();
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    diff = std::max(diff, std::fabs(double{got[i]} - r[i]));
    scale = std::max(scale, std::fabs(double{r[i]}));
  }
  return scale > 0 ? diff / scale : diff;
}

void SetCounters(benchmark::State& state, const Problem& prob, double err) {
  state.counters["FLOPS"] = benchmark::Counter(
      prob.Flops() * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["rel_err"] = err;
}

void RunDive(benchmark::State& state, const ConvShape& s, Pass pass,
             bool bf16, bool bf16_act) {
  SetNumThreads(kThreads);
  // dive's own kernels, whatever Conv2dForward would choose (tensor/conv.h).
  SetConvLibrary(ConvLibrary::kDive);
  const Problem prob(s);
  const Tensor want = prob.RunDive(pass);
  const ScopedMatmulPrecision scope(bf16 ? MatmulPrecision::kBfloat16
                                         : MatmulPrecision::kFloat32);
  const double err =
      RelErr(prob.RunDive(pass, bf16_act).To(DType::kFloat32).data(), want);
  for (auto _ : state) {
    Tensor out = prob.RunDive(pass, bf16_act);
    benchmark::DoNotOptimize(out.raw_data());
  }
  SetCounters(state, prob, err);
  SetNumThreads(0);
}

// ---- oneDNN -----------------------------------------------------------------

using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

dnnl::engine& Engine() {
  static dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

// One operand of the primitive: dive's float32 tensor (`user`, plain layout)
// and the memory the primitive reads or writes (`prim`), with the reorder
// between them when the two differ in layout or data type.
struct Operand {
  memory user, prim;
  dnnl::reorder reorder;
  bool reordered = false;
  // Reordered in every timed call, even when the others are not (weights).
  bool every_call = false;

  // An input: `prim` is filled from `user`.
  static Operand Input(const memory::desc& want, float* data,
                       const memory::dims& dims, tag plain) {
    Operand o;
    o.user = memory({dims, dt::f32, plain}, Engine(), data);
    if (want == o.user.get_desc()) {
      o.prim = o.user;
    } else {
      o.prim = memory(want, Engine());
      o.reorder = dnnl::reorder(o.user, o.prim);
      o.reordered = true;
    }
    return o;
  }

  // An output: `prim` is copied out into `user`.
  static Operand Output(const memory::desc& have, float* data,
                        const memory::dims& dims, tag plain) {
    Operand o;
    o.user = memory({dims, dt::f32, plain}, Engine(), data);
    if (have == o.user.get_desc()) {
      o.prim = o.user;
    } else {
      o.prim = memory(have, Engine());
      o.reorder = dnnl::reorder(o.prim, o.user);
      o.reordered = true;
    }
    return o;
  }

  void In(dnnl::stream& s, bool all) {
    if (reordered && (all || every_call)) reorder.execute(s, user, prim);
  }
  void Out(dnnl::stream& s, bool all) {
    if (reordered && (all || every_call)) reorder.execute(s, prim, user);
  }
};

void RunOneDnn(benchmark::State& state, const ConvShape& s, Pass pass,
               bool bf16, Impl impl) {
  SetNumThreads(kThreads);  // omp_set_num_threads: oneDNN's OpenMP too
  Problem prob(s);
  const Tensor want = prob.RunDive(pass);

  const memory::dims x_dims = {s.n, s.c, s.h, s.w};
  const memory::dims w_dims = {s.oc, s.c, s.k, s.k};
  const memory::dims b_dims = {s.oc};
  const memory::dims y_dims = {s.n, s.oc, prob.oh, prob.ow};
  const memory::dims strides = {s.stride, s.stride};
  const memory::dims pad = {s.pad, s.pad};
  const bool any = impl != Impl::kPlain;
  // The activations' layout: oneDNN's choice, NCHW or NHWC.
  const tag act = impl == Impl::kNhwc ? tag::nhwc : any ? tag::any : tag::nchw;
  const dt in_type = bf16 ? dt::bf16 : dt::f32;
  // Inputs of the pass in bf16, its output in f32.
  const dt x_type = pass == Pass::kBackwardData ? dt::f32 : in_type;
  const dt w_type = pass == Pass::kBackwardWeights ? dt::f32 : in_type;
  const dt y_type = pass == Pass::kForward ? dt::f32 : in_type;
  const memory::desc x_md(x_dims, x_type, act);
  const memory::desc w_md(w_dims, w_type, any ? tag::any : tag::oihw);
  const memory::desc b_md(b_dims, dt::f32, tag::x);
  const memory::desc y_md(y_dims, y_type, act);
  const auto direct = dnnl::algorithm::convolution_direct;

  Tensor out;  // dive's layout, float32
  std::vector<Operand> inputs;
  Operand output;
  dnnl::primitive prim;
  std::unordered_map<int, memory> args;
  std::string impl_name;
  try {
    // The forward training descriptor, all in the input type, is the
    // backward passes' hint.
    const dnnl::convolution_forward::primitive_desc train_pd(
        {dnnl::prop_kind::forward_training, direct,
         memory::desc(x_dims, in_type, act),
         memory::desc(w_dims, in_type, any ? tag::any : tag::oihw), b_md,
         memory::desc(y_dims, in_type, act), strides,
         pad, pad},
        Engine());
    if (pass == Pass::kForward) {
      const dnnl::convolution_forward::primitive_desc pd(
          {dnnl::prop_kind::forward_inference, direct, x_md, w_md, b_md, y_md,
           strides, pad, pad},
          Engine());
      impl_name = pd.impl_info_str();
      out = Tensor::Empty({s.n, s.oc, prob.oh, prob.ow});
      inputs.push_back(Operand::Input(pd.src_desc(), prob.x.data(), x_dims,
                                      tag::nchw));
      inputs.push_back(Operand::Input(pd.weights_desc(), prob.w.data(),
                                      w_dims, tag::oihw));
      inputs.push_back(Operand::Input(pd.bias_desc(), prob.b.data(), b_dims,
                                      tag::x));
      inputs[1].every_call = impl == Impl::kNhwc;
      output = Operand::Output(pd.dst_desc(), out.data(), y_dims, tag::nchw);
      prim = dnnl::convolution_forward(pd);
      args = {{DNNL_ARG_SRC, inputs[0].prim},
              {DNNL_ARG_WEIGHTS, inputs[1].prim},
              {DNNL_ARG_BIAS, inputs[2].prim},
              {DNNL_ARG_DST, output.prim}};
    } else if (pass == Pass::kBackwardData) {
      const dnnl::convolution_backward_data::primitive_desc pd(
          {direct, x_md, w_md, y_md, strides, pad, pad}, Engine(), train_pd);
      impl_name = pd.impl_info_str();
      out = Tensor::Empty({s.n, s.c, s.h, s.w});
      inputs.push_back(Operand::Input(pd.diff_dst_desc(), prob.dy.data(),
                                      y_dims, tag::nchw));
      inputs.push_back(Operand::Input(pd.weights_desc(), prob.w.data(),
                                      w_dims, tag::oihw));
      inputs[1].every_call = impl == Impl::kNhwc;
      output =
          Operand::Output(pd.diff_src_desc(), out.data(), x_dims, tag::nchw);
      prim = dnnl::convolution_backward_data(pd);
      args = {{DNNL_ARG_DIFF_DST, inputs[0].prim},
              {DNNL_ARG_WEIGHTS, inputs[1].prim},
              {DNNL_ARG_DIFF_SRC, output.prim}};
    } else {
      const dnnl::convolution_backward_weights::primitive_desc pd(
          {direct, x_md, w_md, y_md, strides, pad, pad}, Engine(), train_pd);
      impl_name = pd.impl_info_str();
      out = Tensor::Empty({s.oc, s.c, s.k, s.k});
      inputs.push_back(
          Operand::Input(pd.src_desc(), prob.x.data(), x_dims, tag::nchw));
      inputs.push_back(Operand::Input(pd.diff_dst_desc(), prob.dy.data(),
                                      y_dims, tag::nchw));
      output = Operand::Output(pd.diff_weights_desc(), out.data(), w_dims,
                               tag::oihw);
      output.every_call = impl == Impl::kNhwc;
      prim = dnnl::convolution_backward_weights(pd);
      args = {{DNNL_ARG_SRC, inputs[0].prim},
              {DNNL_ARG_DIFF_DST, inputs[1].prim},
              {DNNL_ARG_DIFF_WEIGHTS, output.prim}};
    }
  } catch (const dnnl::error& e) {
    state.SkipWithError(e.what());
    return;
  }
  state.SetLabel(impl_name);
  if (impl_name.rfind("ref", 0) == 0) {
    state.SkipWithError(("oneDNN has only its reference kernel: " + impl_name)
                            .c_str());
    return;
  }

  dnnl::stream stream(Engine());
  const bool reorders = impl == Impl::kPlain || impl == Impl::kBlockedReorders;
  auto call = [&](bool all_reorders) {
    for (Operand& o : inputs) o.In(stream, all_reorders);
    prim.execute(stream, args);
    output.Out(stream, all_reorders);
    stream.wait();
  };
  call(true);  // fills the blocked inputs once, checks the result
  const double err = RelErr(out.data(), want);
  for (auto _ : state) {
    call(reorders);
    benchmark::DoNotOptimize(out.data());
  }
  SetCounters(state, prob, err);
  SetNumThreads(0);
}

void RegisterAll() {
  for (const ConvShape& s : kShapes) {
    for (Pass pass :
         {Pass::kForward, Pass::kBackwardData, Pass::kBackwardWeights}) {
      for (bool bf16 : {false, true}) {
        for (Impl impl : {Impl::kDive, Impl::kDiveBf16Act, Impl::kPlain,
                          Impl::kBlocked, Impl::kBlockedReorders,
                          Impl::kNhwc}) {
          if (impl == Impl::kDiveBf16Act &&
              (!bf16 || pass == Pass::kBackwardData)) {
            continue;  // dy stays float32
          }
          const std::string name = std::string("BM_Conv/") + s.name + "/" +
                                   PassName(pass) + "/" +
                                   (bf16 ? "bf16" : "f32") + "/" +
                                   ImplName(impl);
          benchmark::RegisterBenchmark(
              name.c_str(),
              [s, pass, bf16, impl](benchmark::State& state) {
                if (impl == Impl::kDive || impl == Impl::kDiveBf16Act) {
                  RunDive(state, s, pass, bf16, impl == Impl::kDiveBf16Act);
                } else {
                  RunOneDnn(state, s, pass, bf16, impl);
                }
              })
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond)
              // With --benchmark_repetitions: the best repetition, the
              // one least disturbed by other processes (for FLOPS, the
              // "max" row).
              ->ComputeStatistics("max",
                                  [](const std::vector<double>& v) {
                                    return *std::max_element(v.begin(),
                                                             v.end());
                                  });
        }
      }
    }
  }
}

}  // namespace
}  // namespace dive::bench

int main(int argc, char** argv) {
  dive::bench::RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
