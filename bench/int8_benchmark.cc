// The int8 GEMM and convolution (tensor/qgemm.h, tensor/qconv.h) beside
// dive's bf16 ones on zoo convolution shapes, and the VPDPBUSD peak:
//
//   bazel run -c opt //bench:int8_benchmark
//
//   BM_QConv2d/<layer>/<path>/threads:T
//       QConv2d, uint8 in and out, per-channel requantization with bias and
//       ReLU, weights packed once outside the loop; one benchmark per int8
//       path the CPU has (not AMX, untested on hardware), activations
//       0..255 with zero point 128; avx2_u7 on activations 0..127 with
//       zero point 64 (reduce_range's, its VPMADDUBSW kernels), and as
//       avx2_u7_split on 0..255 (its exact fallback for bytes above 127).
//       On avx512_vnni, QConv2d runs oneDNN's int8 convolution on the
//       shapes tensor/qconv_onednn.h lists; DIVE_QCONV_LIBRARY=dive (or
//       DIVE_CONV_LIBRARY=dive) times dive's kernels there, =onednn oneDNN
//       on every shape.
//   BM_QConv2dOneDnn/<layer>/<layout>/threads:T
//       oneDNN 2.6's int8 convolution (Debian's libdnnl, what PyTorch's
//       onednn quantized engine runs) on the same operands: uint8 x with
//       zero point 128, int8 weights reordered once outside the loop, int32
//       bias, per-channel output scales, ReLU and the output zero point,
//       uint8 out. <layout>: "blocked" in the layouts oneDNN picks, x and y
//       already in them (as between two oneDNN layers); "blocked_reorders"
//       with x reordered from and y to NCHW in every call (dive's layout).
//       Conv2dForward in bf16 matmul precision with bf16 activations in and
//       out, bias and ReLU fused (dive's bf16 inference; it packs its
//       weights in every call, a small share at these batches).
//   BM_QGemm/<m>x<n>x<k>/<path>/threads:T, BM_GemmBf16/<m>x<n>x<k>/threads:T
//       C [m, n] = A [m, k] B [k, n]; QGemm with B packed once, uint8 out
//       (the activations as BM_QConv2d's, avx2_u7 and avx2_u7_split too);
//       Gemm in bf16 precision (packs both operands per call), float out.
//   "OPS" counter: 2 * multiply-adds per second (as FLOP/s).
//   BM_PeakVnni/T: register-only VPDPBUSD on zmm, T threads (CPUs with
//       AVX512-VNNI); BM_PeakBf16/T and BM_PeakFma/T come from
//       :peak_benchmark in the same run.
//
// T is 1 and all cores (Register, bench/registration.h).
//
// Measured on the 2-core AMD EPYC Zen 5 VM (AVX512-VNNI, AVX-VNNI,
// AVX512-BF16; no AMX), one thread, medians of 5 randomly interleaved
// repetitions (--benchmark_repetitions=5
// --benchmark_enable_random_interleaving=true), the background training
// paused but other builds running (load 3.5-3.9), int8 on avx512_vnni
// against bf16, GOPS:
//   conv alexnet96_conv2 334 / 303 (1.10x)   vgg96_block2 302 / 126 (2.40x)
//        resnet96_b2     417 / 170 (2.45x)   resnet96_b3  406 / 276 (1.47x)
//        resnet96_b5     290 / 210 (1.38x)   googlenet96_1x1 338 / 177 (1.90x)
//   GEMM 64x4096x4096 649 / 170 (3.8x; the bf16 Gemm packs B in every call)
//        256x256x1152 629 / 259 (2.43x)     1024^3 672 / 299 (2.25x)
//   peaks: VPDPBUSD 863, VDPBF16PS 390, FMA 211 (G op/s)
// The two-thread figures of that run were dominated by the other builds.
//
// The AVX2 paths (CPUs without VNNI), the same VM, the training job at
// nice 19 on both cores, medians of 5 interleaved repetitions, 1 thread,
// GOPS, avx2 / avx2_u7 / avx2_u7_split:
//   GEMM 256x256x1152 92.6 / 178.0 / 100.6   1024^3 108.5 / 179.7 / 85.9
//   conv resnet96_b2  81.4 / 153.8 / 74.0    resnet96_b3 82.5 / 145.7 / 78.9
// (2 threads: below 1 thread's, the second core being the training job's.)
//
// dive's int8 against oneDNN's, the same VM, quiet, 2 threads, one run of
// 0.2 s each (--benchmark_filter='BM_(QConv2d/.*avx512_vnni|QConv2dOneDnn|
// Conv2dBf16)/.*threads:2'), ms per call: dive int8 / oneDNN with the NCHW
// reorders / oneDNN in its blocked layout / dive bf16:
//   alexnet96_conv2   12.07 / 5.00 / 4.48 / 9.65
//   vgg96_block2       2.76 / 2.39 / 1.34 / 3.81
//   resnet96_b2        1.81 / 1.42 / 0.97 / 2.20
//   resnet96_b3        1.68 / 1.10 / 0.89 / 1.96
//   resnet96_b5        2.99 / 2.41 / 1.01 / 4.21
//   googlenet96_1x1    0.200 / 0.283 / 0.091 / 0.335
// oneDNN (brgconv, avx512_core_vnni) is 1.2-2.4x dive's int8 with the
// reorders on every KxK layer and 1.9-3.0x without them; dive's 1x1 wins
// while the reorders are paid.

#include <random>
#include <string>
#include <vector>

#include "bench/registration.h"
#include "benchmark/benchmark.h"
#include "glog/logging.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "tensor/conv.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/peak/peak.h"
#include "tensor/qconv.h"
#include "tensor/qgemm.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace dive::bench {
namespace {

void SetOps(benchmark::State& state, double ops_per_call) {
  state.counters["OPS"] = benchmark::Counter(ops_per_call * state.iterations(),
                                             benchmark::Counter::kIsRate);
}

template <typename T>
std::vector<T> RandomInts(int64_t size, int lo, int hi) {
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<T> v(size);
  for (T& x : v) x = static_cast<T>(dist(rng));
  return v;
}

// The runs to time: every path this CPU has, but AMX, on 8-bit
// activations; avx2_u7 on 7-bit ones (its VPMADDUBSW kernels), and as
// "avx2_u7_split" on 8-bit ones (its kernels for bytes above 127).
struct PathRun {
  QGemmPath path;
  bool seven_bit;
  std::string name;
};
std::vector<PathRun> PathRuns() {
  std::vector<PathRun> runs;
  for (QGemmPath p : kAllQGemmPaths) {
    if (p == QGemmPath::kAmx || !QGemmPathSupported(p).ok()) continue;
    const std::string name(QGemmPathName(p));
    if (p == QGemmPath::kAvx2U7) {
      runs.push_back({p, true, name});
      runs.push_back({p, false, name + "_split"});
    } else {
      runs.push_back({p, false, name});
    }
  }
  return runs;
}

// ---- Convolution
// -------------------------------------------------------------

struct ConvShape {
  const char* name;
  int64_t n, c, h, w, oc, k, stride, pad;
};

// Layers of the zoo at their bench resolution and batch
// (bench/kernel_benchmark.cc's).
const ConvShape kConvShapes[] = {
    {"alexnet96_conv2", 64, 96, 10, 10, 256, 5, 1, 2},
    {"vgg96_block2", 64, 16, 48, 48, 32, 3, 1, 1},
    {"resnet96_b2", 32, 64, 24, 24, 64, 3, 1, 1},
    {"resnet96_b3", 32, 128, 12, 12, 128, 3, 1, 1},
    {"resnet96_b5", 32, 512, 3, 3, 512, 3, 1, 1},
    {"googlenet96_1x1", 32, 192, 12, 12, 64, 1, 1, 0},
};

double ConvOps(const ConvShape& s) {
  const int64_t o = (s.h + 2 * s.pad - s.k) / s.stride + 1;
  return 2.0 * s.n * s.oc * s.c * s.k * s.k * o * o;
}

// Activations 0..255 with zero point 128, or 0..127 with zero point 64
// (`seven_bit`: reduce_range's, which avx2_u7 runs on VPMADDUBSW).
void RunQConv(benchmark::State& state, const ConvShape& s, QGemmPath path,
              bool seven_bit) {
  const int32_t zero_point = seven_bit ? 64 : 128;
  const auto x =
      RandomInts<uint8_t>(s.n * s.c * s.h * s.w, 0, seven_bit ? 127 : 255);
  const auto w = RandomInts<int8_t>(s.oc * s.c * s.k * s.k, -127, 127);
  const auto bias = RandomInts<int32_t>(s.oc, -1000, 1000);
  const std::vector<float> scale(s.oc, 1e-3f);
  absl::StatusOr<QPackedWeights> packed =
      PackQConv2dWeights(path, s.oc, s.c, s.k, s.k, w.data());
  CHECK(packed.ok()) << packed.status();
  QConv2dParams p;
  p.stride_h = p.stride_w = s.stride;
  p.pad_h = p.pad_w = s.pad;
  QRequantization rq;
  rq.scale = scale.data();
  rq.bias = bias.data();
  rq.zero_point = 3;
  rq.relu = true;
  const int64_t o = (s.h + 2 * s.pad - s.k) / s.stride + 1;
  std::vector<uint8_t> y(s.n * s.oc * o * o);
  for (auto _ : state) {
    const absl::Status st =
        QConv2d(s.n, s.h, s.w, x.data(), zero_point, *packed, p, rq, y.data());
    CHECK(st.ok()) << st;
    benchmark::DoNotOptimize(y.data());
  }
  SetOps(state, ConvOps(s));
}

void RunOneDnnQConv(benchmark::State& state, const ConvShape& s,
                    bool reorders) {
  using dnnl::memory;
  using dt = memory::data_type;
  using tag = memory::format_tag;
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const auto x = RandomInts<uint8_t>(s.n * s.c * s.h * s.w, 0, 255);
  const auto w = RandomInts<int8_t>(s.oc * s.c * s.k * s.k, -127, 127);
  const auto bias = RandomInts<int32_t>(s.oc, -1000, 1000);
  const std::vector<float> scale(s.oc, 1e-3f);
  const int64_t o = (s.h + 2 * s.pad - s.k) / s.stride + 1;
  const memory::dims x_dims = {s.n, s.c, s.h, s.w};
  const memory::dims w_dims = {s.oc, s.c, s.k, s.k};
  const memory::dims y_dims = {s.n, s.oc, o, o};
  dnnl::primitive_attr attr;
  attr.set_output_scales(/*mask=*/1 << 1, scale);
  attr.set_zero_points(DNNL_ARG_SRC, 0, {128});
  attr.set_zero_points(DNNL_ARG_DST, 0, {3});
  dnnl::post_ops ops;
  ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0, 0);
  attr.set_post_ops(ops);
  const memory::desc b_desc({s.oc}, dt::s32, tag::x);
  const dnnl::convolution_forward::primitive_desc pd(
      {dnnl::prop_kind::forward_inference,
       dnnl::algorithm::convolution_direct,
       memory::desc(x_dims, dt::u8, tag::any),
       memory::desc(w_dims, dt::s8, tag::any),
       b_desc,
       memory::desc(y_dims, dt::u8, tag::any),
       {s.stride, s.stride},
       {s.pad, s.pad},
       {s.pad, s.pad}},
      attr, engine);
  state.SetLabel(pd.impl_info_str());
  const dnnl::convolution_forward conv(pd);
  memory x_user({x_dims, dt::u8, tag::nchw}, engine,
                const_cast<uint8_t*>(x.data()));
  memory w_user({w_dims, dt::s8, tag::oihw}, engine,
                const_cast<int8_t*>(w.data()));
  memory b_mem(b_desc, engine, const_cast<int32_t*>(bias.data()));
  memory x_prim(pd.src_desc(), engine), w_prim(pd.weights_desc(), engine);
  memory y_prim(pd.dst_desc(), engine);
  memory y_user({y_dims, dt::u8, tag::nchw}, engine);
  dnnl::reorder(w_user, w_prim).execute(stream, w_user, w_prim);
  dnnl::reorder(x_user, x_prim).execute(stream, x_user, x_prim);
  const dnnl::reorder x_in(x_user, x_prim), y_out(y_prim, y_user);
  for (auto _ : state) {
    if (reorders) x_in.execute(stream, x_user, x_prim);
    conv.execute(stream, {{DNNL_ARG_SRC, x_prim},
                          {DNNL_ARG_WEIGHTS, w_prim},
                          {DNNL_ARG_BIAS, b_mem},
                          {DNNL_ARG_DST, y_prim}});
    if (reorders) y_out.execute(stream, y_prim, y_user);
    stream.wait();
  }
  SetOps(state, ConvOps(s));
}

void RunBf16Conv(benchmark::State& state, const ConvShape& s) {
  Generator gen(1);
  const Tensor x =
      gen.Uniform({s.n, s.c, s.h, s.w}, -1, 1).To(DType::kBfloat16);
  const Tensor w = gen.Uniform({s.oc, s.c, s.k, s.k}, -0.1f, 0.1f);
  const Tensor b = gen.Uniform({s.oc}, -0.1f, 0.1f);
  Conv2dParams p;
  p.stride_h = p.stride_w = s.stride;
  p.pad_h = p.pad_w = s.pad;
  Conv2dEpilogue epilogue;
  epilogue.relu = true;
  epilogue.dtype = DType::kBfloat16;
  ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  for (auto _ : state) {
    Tensor y = Conv2dForward(x, w, b, p, epilogue);
    benchmark::DoNotOptimize(y.raw_data());
  }
  SetOps(state, ConvOps(s));
}

// ---- GEMM
// ----------------------------------------------------------------------

struct GemmShape {
  int64_t m, n, k;
};

// A Linear layer's batch of 64 (AlexNet's 4096-wide layers), ResNet's
// 3 x 3 x 128 im2col against 256 channels, and a square.
const GemmShape kGemmShapes[] = {
    {64, 4096, 4096},
    {256, 256, 1152},
    {1024, 1024, 1024},
};

std::string GemmName(const GemmShape& g) {
  return std::to_string(g.m) + "x" + std::to_string(g.n) + "x" +
         std::to_string(g.k);
}

void RunQGemm(benchmark::State& state, const GemmShape& g, QGemmPath path,
              bool seven_bit) {
  const int32_t zero_point = seven_bit ? 64 : 128;
  const auto a = RandomInts<uint8_t>(g.m * g.k, 0, seven_bit ? 127 : 255);
  const auto b = RandomInts<int8_t>(g.k * g.n, -127, 127);
  const std::vector<float> scale(g.n, 1e-4f);
  absl::StatusOr<QPackedWeights> packed =
      PackQGemmWeights(path, g.k, g.n, b.data(), g.n, false);
  CHECK(packed.ok()) << packed.status();
  QRequantization rq;
  rq.scale = scale.data();
  rq.zero_point = 128;
  std::vector<uint8_t> c(g.m * g.n);
  for (auto _ : state) {
    const absl::Status st =
        QGemm(g.m, a.data(), g.k, zero_point, *packed, rq, c.data(), g.n);
    CHECK(st.ok()) << st;
    benchmark::DoNotOptimize(c.data());
  }
  SetOps(state, 2.0 * g.m * g.n * g.k);
}

void RunBf16Gemm(benchmark::State& state, const GemmShape& g) {
  Generator gen(1);
  const Tensor a = gen.Uniform({g.m, g.k}, -1, 1);
  const Tensor b = gen.Uniform({g.k, g.n}, -1, 1);
  std::vector<float> c(g.m * g.n);
  ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  for (auto _ : state) {
    Gemm(false, false, g.m, g.n, g.k, 1.0f, a.data(), g.k, b.data(), g.n, 0.0f,
         c.data(), g.n);
    benchmark::DoNotOptimize(c.data());
  }
  SetOps(state, 2.0 * g.m * g.n * g.k);
}

int RegisterAll() {
  for (const ConvShape& s : kConvShapes) {
    for (const auto& [path, seven_bit, name] : PathRuns()) {
      Register(std::string("BM_QConv2d/") + s.name + "/" + name,
               [s, path = path, seven_bit = seven_bit](benchmark::State& st) {
                 RunQConv(st, s, path, seven_bit);
               });
    }
    for (bool reorders : {false, true}) {
      Register(std::string("BM_QConv2dOneDnn/") + s.name +
                   (reorders ? "/blocked_reorders" : "/blocked"),
               [s, reorders](benchmark::State& st) {
                 RunOneDnnQConv(st, s, reorders);
               });
    }
    Register(std::string("BM_Conv2dBf16/") + s.name,
             [s](benchmark::State& st) { RunBf16Conv(st, s); });
  }
  for (const GemmShape& g : kGemmShapes) {
    for (const auto& [path, seven_bit, name] : PathRuns()) {
      Register("BM_QGemm/" + GemmName(g) + "/" + name,
               [g, path = path, seven_bit = seven_bit](benchmark::State& st) {
                 RunQGemm(st, g, path, seven_bit);
               });
    }
    Register("BM_GemmBf16/" + GemmName(g),
             [g](benchmark::State& st) { RunBf16Gemm(st, g); });
  }
  if (DetectedCpu().avx512_vnni) {
    benchmark::RegisterBenchmark(
        "BM_PeakVnni",
        [](benchmark::State& state) {
          const int threads = static_cast<int>(state.range(0));
          int64_t ops = 0;
          for (auto _ : state)
            ops += RunOnThreads(PeakVnniDotLoop, 1 << 20, threads);
          state.counters["OPS"] = benchmark::Counter(
              static_cast<double>(ops), benchmark::Counter::kIsRate);
        })
        ->Arg(1)
        ->Arg(2)
        ->UseRealTime();
  }
  return 0;
}
const int registered = RegisterAll();  // at static initialization

}  // namespace
}  // namespace dive::bench
