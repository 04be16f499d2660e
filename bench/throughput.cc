// Training or inference throughput of one zoo model, as one line of JSON on
// stdout, for bench/compare_pytorch.py (which runs the PyTorch twin the same
// way):
//
//   bazel run //bench:throughput -- --model=lenet --mode=train --steps=20
//   {"framework":"dive","model":"lenet","mode":"train","batch_size":256,
//    "input_size":28,"lr":0.9,"threads":2,"warmup":3,"steps":20,
//    "seconds":1.23,"examples_per_sec":4163.2,"baseline_rss_mb":5.1,
//    "peak_rss_mb":61.0,"loss":2.31,"precision":"fp32",
//    "flops_per_example":2499120,"peak_gflops":436.2,"peak":"fma",
//    "fraction_of_peak":0.071,"cpu":"..."}
//   (one line)
//
// --batch_size and --resize default to the model's bench setting
// (bench/model_bench.h). The first --warmup steps are not timed.
// --precision=bf16 runs convolution and Linear with bf16 operands (float32
// sums), as PyTorch's bf16 autocast does; "cpu" names the CPU and the kernel
// path (tensor/cpu.h).
// --memory_format (auto, channels_last or contiguous; "memory_format")
// is the layout of the activations between oneDNN's bf16 convolutions
// (tensor/conv.h), by default the model's measured choice for --mode
// (models/spec.h).
// peak_rss_mb is this process's VmHWM at the end; baseline_rss_mb the one
// before the model was built.
// flops_per_example counts conv and linear multiply-adds x 2 (nn/flops.h),
// 3x the forward's for a training step (forward, input and weight
// gradients). peak_gflops is the register-only peak of the instruction the
// products run on ("peak": "fma", or "vdpbf16ps" for bf16 on a CPU with
// AVX512-BF16; tensor/peak/peak.h), measured in this process on --threads
// threads right after the timed steps; fraction_of_peak is the steps'
// FLOP/s over it. On an AMX machine the bf16 figure is still against
// VDPBF16PS: dive has no TDPBF16PS peak loop yet.
// --precision=int8 (with --mode=infer; quant/quantized_model.h) quantizes
// the model's (random) weights, calibrated on one synthetic batch, and
// times the int8 model; its peak is VPDPBUSD's ("vpdpbusd", integer
// operations counted as FLOPs are) on a CPU with AVX512-VNNI, else the FMA
// one (AVX2's int8 path, VPMADDWD, has no peak loop of its own yet).
// --reduce_range (auto, true or false; as //tools:quantize's) calibrates the
// activations to 0..127; "int8_path" names the kernels the int8 layers run
// on (tensor/qgemm.h; DIVE_QGEMM_PATH=avx2 times an AVX2-only CPU's on one
// with VNNI) and "reduce_range" whether it was on.

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "autograd/variable.h"
#include "bench/model_bench.h"
#include "models/zoo.h"
#include "nn/bf16_activations.h"
#include "nn/flops.h"
#include "quant/quantized_model.h"
#include "tensor/conv.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/json.h"
#include "tensor/memory_format.h"
#include "tensor/peak/peak.h"
#include "tensor/qgemm.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "train/cli.h"

ABSL_FLAG(std::string, model, "lenet", "zoo model name (models/zoo.h)");
ABSL_FLAG(std::string, mode, "train", "train or infer");
ABSL_FLAG(int64_t, batch_size, 0, "batch size (0: the model's bench setting)");
ABSL_FLAG(int64_t, resize, 0, "input side (0: the model's bench setting)");
ABSL_FLAG(int64_t, steps, 10, "timed steps");
ABSL_FLAG(int64_t, warmup, 3, "untimed steps before the timed ones");
ABSL_FLAG(int, threads, 0, "kernel threads (0: all cores)");
ABSL_FLAG(uint64_t, seed, 0, "seed of the weights and the synthetic batch");
ABSL_FLAG(std::string, memory_format, "auto",
          "under bf16: the activations' layout between oneDNN's "
          "convolutions, channels_last, contiguous or auto (the model's "
          "measured choice for --mode)");
ABSL_FLAG(std::string, precision, "fp32",
          "fp32; bf16: convolution and Linear multiply bf16 operands "
          "(tensor/gemm.h MatmulPrecision); int8 (--mode=infer): the model "
          "quantized (quant/quantized_model.h)");
ABSL_FLAG(std::string, reduce_range, "auto",
          "int8: calibrate the activations to 0..127 (true), 0..255 (false), "
          "or the former where this CPU's int8 path is avx2 (auto)");

namespace dive::bench {
namespace {

int Run() {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "train" && mode != "infer") {
    std::fprintf(stderr, "--mode must be train or infer, got '%s'\n",
                 mode.c_str());
    return 2;
  }
  const std::string precision = absl::GetFlag(FLAGS_precision);
  const bool int8 = precision == "int8";
  if (int8 && mode != "infer") {
    std::fprintf(stderr, "--precision=int8 needs --mode=infer\n");
    return 2;
  }
  const absl::StatusOr<MatmulPrecision> matmul_precision =
      int8 ? MatmulPrecision::kFloat32 : train::ParsePrecision(precision);
  if (!matmul_precision.ok()) {
    std::fprintf(stderr, "%s\n",
                 std::string(matmul_precision.status().message()).c_str());
    return 2;
  }
  if (absl::StatusOr<Isa> isa = IsaFromEnvironment(); !isa.ok()) {
    std::fprintf(stderr, "%s\n", std::string(isa.status().message()).c_str());
    return 2;
  }
  if (absl::GetFlag(FLAGS_steps) <= 0 || absl::GetFlag(FLAGS_warmup) < 0) {
    std::fprintf(stderr, "--steps must be positive and --warmup >= 0\n");
    return 2;
  }
  absl::StatusOr<models::ModelSpec> spec =
      models::FindModel(absl::GetFlag(FLAGS_model));
  if (!spec.ok()) {
    std::fprintf(stderr, "%s\n", spec.status().ToString().c_str());
    return 2;
  }
  BenchSetting setting = DefaultBenchSetting(*spec);
  if (absl::GetFlag(FLAGS_batch_size) > 0) {
    setting.batch_size = absl::GetFlag(FLAGS_batch_size);
  }
  if (absl::GetFlag(FLAGS_resize) > 0) {
    setting.input_size = absl::GetFlag(FLAGS_resize);
  }
  SetNumThreads(absl::GetFlag(FLAGS_threads));
  const double baseline_rss = PeakRssBytes() / 1048576.0;
  absl::StatusOr<std::unique_ptr<ModelRunner>> runner =
      ModelRunner::Create(*spec, setting, absl::GetFlag(FLAGS_seed));
  if (!runner.ok()) {
    std::fprintf(stderr, "%s\n", runner.status().ToString().c_str());
    return 2;
  }
  const bool train = mode == "train";
  const absl::StatusOr<MemoryFormat> memory_format = train::ParseMemoryFormat(
      absl::GetFlag(FLAGS_memory_format), *spec, train);
  if (!memory_format.ok()) {
    std::fprintf(stderr, "%s\n",
                 std::string(memory_format.status().message()).c_str());
    return 2;
  }
  const ScopedConvMemoryFormat layout(*memory_format);
  const ScopedMatmulPrecision scope(*matmul_precision);
  // As the trainers: in bf16, activations stored as autocast stores them.
  const nn::ScopedBf16Activations stored(
      *matmul_precision == MatmulPrecision::kBfloat16
          ? nn::Bf16Activations::kAutocast
          : nn::Bf16Activations::kWhereExact);
  std::shared_ptr<quant::QuantizedModel> int8_model;
  Tensor int8_images;
  if (int8) {
    Generator gen(absl::GetFlag(FLAGS_seed));
    const Shape shape{setting.batch_size, 1, setting.input_size,
                      setting.input_size};
    int8_images = gen.Uniform(shape, 0, 1);
    absl::StatusOr<bool> reduce_range =
        quant::ParseReduceRange(absl::GetFlag(FLAGS_reduce_range));
    if (!reduce_range.ok()) {
      std::fprintf(stderr, "--%s\n",
                   std::string(reduce_range.status().message()).c_str());
      return 2;
    }
    quant::QuantizeOptions options;
    options.reduce_range = *reduce_range;
    absl::StatusOr<std::shared_ptr<quant::QuantizedModel>> q =
        quant::QuantizeModel((*runner)->shared_model(),
                             {gen.Uniform(shape, 0, 1)}, options);
    if (!q.ok()) {
      std::fprintf(stderr, "%s\n", q.status().ToString().c_str());
      return 2;
    }
    int8_model = *std::move(q);
  }
  float loss = 0;
  auto step = [&] {
    if (train) {
      loss = (*runner)->TrainStep();
    } else if (int8) {
      (*int8_model)(autograd::Variable(int8_images));
    } else {
      (*runner)->Infer();
    }
  };
  for (int64_t i = 0; i < absl::GetFlag(FLAGS_warmup); ++i) step();
  const int64_t steps = absl::GetFlag(FLAGS_steps);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) step();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  absl::StatusOr<int64_t> forward_flops = nn::ForwardFlopsPerExample(
      (*runner)->model(), {1, setting.input_size, setting.input_size});
  if (!forward_flops.ok()) {
    std::fprintf(stderr, "%s\n", forward_flops.status().ToString().c_str());
    return 2;
  }
  const int64_t flops_per_example = (train ? 3 : 1) * *forward_flops;
  const bool bf16_peak = *matmul_precision == MatmulPrecision::kBfloat16 &&
                         DetectedCpu().avx512_bf16;
  const bool vnni_peak = int8 && DetectedCpu().avx512_vnni;
  const double peak = MeasurePeakFlops(bf16_peak   ? PeakBf16DotLoop
                                       : vnni_peak ? PeakVnniDotLoop
                                                   : PeakFmaLoop,
                                       GetNumThreads());
  const double examples_per_sec = steps * setting.batch_size / seconds;
  OrderedJson result = OrderedJson::object();
  result["framework"] = "dive";
  result["model"] = spec->name;
  result["mode"] = mode;
  result["batch_size"] = setting.batch_size;
  result["input_size"] = setting.input_size;
  result["lr"] = JsonNumber(spec->recipe.lr, 6);
  result["threads"] = GetNumThreads();
  result["warmup"] = absl::GetFlag(FLAGS_warmup);
  result["steps"] = steps;
  result["seconds"] = JsonNumber(seconds);
  result["examples_per_sec"] = JsonNumber(examples_per_sec);
  result["baseline_rss_mb"] = JsonNumber(baseline_rss, 6);
  result["peak_rss_mb"] = JsonNumber(PeakRssBytes() / 1048576.0, 6);
  // A diverged loss is null (JsonNumber), as is that of inference.
  result["loss"] = train ? JsonNumber(loss, 6) : OrderedJson(nullptr);
  result["precision"] = precision;
  result["memory_format"] = *memory_format == MemoryFormat::kChannelsLast
                                ? "channels_last"
                                : "contiguous";
  if (int8) {
    result["int8_path"] = std::string(
        QGemmPathName(DefaultQGemmPath(int8_model->reduce_range())));
    result["reduce_range"] = int8_model->reduce_range();
  }
  result["flops_per_example"] = flops_per_example;
  result["peak_gflops"] = JsonNumber(peak / 1e9, 4);
  result["peak"] = bf16_peak ? "vdpbf16ps" : vnni_peak ? "vpdpbusd" : "fma";
  result["fraction_of_peak"] =
      JsonNumber(examples_per_sec * flops_per_example / peak, 3);
  result["cpu"] = CpuDescription();
  std::printf("%s\n", JsonText(result).c_str());
  return 0;
}

}  // namespace
}  // namespace dive::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dive::bench::Run();
}
