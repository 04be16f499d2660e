// Step time of data-parallel training of one zoo model under mpirun, as one
// line of JSON from rank 0, for bench/netns_mpi.sh (ranks in network
// namespaces joined by rate-shaped veth links) and the all-reduce cost model
// in bench/README.md:
//
//   mpirun -np 2 bazel-bin/bench/ddp_step --model=resnet --steps=20
//   {"model":"resnet","ranks":2,"threads":1,"batch_size":32,
//    "input_size":96,"mode":"ddp","overlap":true,"bf16_compress":false,
//    "bucket_mb":25,"buckets":2,"parameters":11175370,
//    "gradient_bytes":44701480,"bytes_all_reduced_per_step":44701536,
//    "warmup":3,"steps":20,"step_ms":[...],"median_step_ms":...,
//    "rank_median_step_ms":[...],...}
//   (one line)
//
// A step is what the trainers do per batch (train::Train), on a fixed
// synthetic batch (bench/model_bench.h: uniform [0, 1) images, random
// labels, a different batch per rank) so that data loading is not timed:
// forward, mean SoftmaxCrossEntropy, zero the gradients, backward, the
// gradients' all-reduce through `DistributedDataParallel` (with the
// trainers' --ddp_bucket_mb, --ddp_overlap and --ddp_bf16_compress), SGD.
//
// --mode:
//   ddp             the step above;
//   no_allreduce    the same step with the all-reduce left out (the ranks
//                   still compute side by side, so they share the machine as
//                   in `ddp`; the replicas drift apart, which does not matter
//                   for timing): the compute time the all-reduce adds to;
//   allreduce_only  only `AllReduceGradients()` of the model's gradients
//                   (one backward pass first fills them; no hooks fire in the
//                   timed steps, so every bucket starts at once): the
//                   communication alone, for the cost model.
//
// step_ms lists rank 0's timed steps; each rank starts them after a barrier.
// rank_median_step_ms is each rank's median (they differ only in
// no_allreduce, where nothing synchronizes the ranks).
// bytes_all_reduced_per_step is what one rank hands to MPI per step
// (DistributedDataParallel::bytes_all_reduced: gradients plus one flag per
// parameter, 2 bytes a value with bf16 compression); a ring all-reduce sends
// 2 (ranks - 1) / ranks times that over each rank's link.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "autograd/functions.h"
#include "autograd/variable.h"
#include "bench/model_bench.h"
#include "distributed/data_parallel.h"
#include "distributed/mpi_process_group.h"
#include "distributed/process_group.h"
#include "models/zoo.h"
#include "nn/module.h"
#include "optim/sgd.h"
#include "tensor/cpu.h"
#include "tensor/json.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

ABSL_FLAG(std::string, model, "resnet", "zoo model name (models/zoo.h)");
ABSL_FLAG(std::string, mode, "ddp", "ddp, no_allreduce or allreduce_only");
ABSL_FLAG(int64_t, batch_size, 0,
          "batch size per rank (0: the model's bench setting)");
ABSL_FLAG(int64_t, resize, 0, "input side (0: the model's bench setting)");
ABSL_FLAG(int64_t, steps, 20, "timed steps");
ABSL_FLAG(int64_t, warmup, 3, "untimed steps before the timed ones");
ABSL_FLAG(int, threads, 1, "kernel threads per rank (0: all cores)");
ABSL_FLAG(uint64_t, seed, 0, "seed of the weights and the synthetic batch");
ABSL_FLAG(double, ddp_bucket_mb, 25,
          "MiB of float32 gradients per all-reduce (as the trainers' flag)");
ABSL_FLAG(bool, ddp_overlap, true,
          "start each bucket's all-reduce during the backward pass");
ABSL_FLAG(bool, ddp_bf16_compress, false, "send gradients as bf16");
ABSL_FLAG(double, collective_timeout, 120,
          "seconds a collective may wait for the other ranks");

namespace dive::bench {
namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "ddp_step: %s\n", message.c_str());
  return 2;
}

int Run() {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "ddp" && mode != "no_allreduce" && mode != "allreduce_only") {
    return Fail("--mode must be ddp, no_allreduce or allreduce_only, got '" +
                mode + "'");
  }
  const int64_t steps = absl::GetFlag(FLAGS_steps);
  const int64_t warmup = absl::GetFlag(FLAGS_warmup);
  if (steps <= 0 || warmup < 0) {
    return Fail("--steps must be positive and --warmup >= 0");
  }
  const double bucket_mb = absl::GetFlag(FLAGS_ddp_bucket_mb);
  if (!(bucket_mb > 0 && bucket_mb <= 1 << 20)) {
    return Fail("--ddp_bucket_mb must be in (0, 1048576]");
  }
  absl::StatusOr<models::ModelSpec> spec =
      models::FindModel(absl::GetFlag(FLAGS_model));
  if (!spec.ok()) return Fail(spec.status().ToString());
  BenchSetting setting = DefaultBenchSetting(*spec);
  if (absl::GetFlag(FLAGS_batch_size) > 0) {
    setting.batch_size = absl::GetFlag(FLAGS_batch_size);
  }
  if (absl::GetFlag(FLAGS_resize) > 0) {
    setting.input_size = absl::GetFlag(FLAGS_resize);
  }
  SetNumThreads(absl::GetFlag(FLAGS_threads));

  distributed::ProcessGroupOptions group_options;
  group_options.collective_timeout =
      absl::Seconds(absl::GetFlag(FLAGS_collective_timeout));
  absl::StatusOr<std::unique_ptr<distributed::ProcessGroup>> group =
      distributed::CreateProcessGroup(group_options);
  if (!group.ok()) return Fail(group.status().ToString());
  distributed::ProcessGroup& g = **group;

  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  ManualSeed(seed);
  absl::StatusOr<std::shared_ptr<nn::Module>> model =
      spec->make(setting.input_size);
  if (!model.ok()) return Fail(model.status().ToString());
  nn::Module& m = **model;
  m.Fuse();  // as train::Train does
  Generator gen(seed + 1 + static_cast<uint64_t>(g.rank()));
  const Tensor images = gen.Uniform(
      {setting.batch_size, 1, setting.input_size, setting.input_size}, 0, 1);
  std::vector<int64_t> label_values(setting.batch_size);
  for (int64_t& l : label_values) l = gen.NextIndex(10);
  const Tensor labels =
      Tensor::FromInt64Vector(label_values, {setting.batch_size});

  std::vector<autograd::Variable> params = m.Parameters();
  distributed::DataParallelOptions ddp_options;
  ddp_options.bucket_bytes = std::max<size_t>(
      sizeof(float), static_cast<size_t>(bucket_mb * (1 << 20)));
  ddp_options.overlap = absl::GetFlag(FLAGS_ddp_overlap);
  ddp_options.bf16_compress = absl::GetFlag(FLAGS_ddp_bf16_compress);
  distributed::DistributedDataParallel ddp(g, params, ddp_options);
  if (absl::Status s = ddp.BroadcastParameters(); !s.ok()) {
    return Fail(s.ToString());
  }
  optim::SGD sgd(params, optim::SGDOptions{.lr = spec->recipe.lr});
  int64_t parameters = 0;
  for (const autograd::Variable& p : params) parameters += p.data().numel();

  m.Train();
  auto forward_backward = [&] {
    autograd::Variable logits = m(autograd::Variable(images));
    autograd::Variable loss = SoftmaxCrossEntropy(logits, labels);
    loss.data().item();  // the trainers read the loss every step
    sgd.ZeroGrad();
    loss.Backward();
  };
  absl::Status status;
  auto step = [&] {
    if (mode == "allreduce_only") {
      status.Update(ddp.AllReduceGradients());
      return;
    }
    forward_backward();
    if (mode == "ddp") status.Update(ddp.AllReduceGradients());
    sgd.Step();
  };
  if (mode == "allreduce_only") forward_backward();
  for (int64_t i = 0; i < warmup; ++i) step();
  if (absl::Status s = g.Barrier(); !s.ok()) return Fail(s.ToString());
  const uint64_t bytes_before = ddp.bytes_all_reduced();
  std::vector<double> step_ms;
  for (int64_t i = 0; i < steps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    step();
    step_ms.push_back(std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - start)
                          .count());
  }
  if (!status.ok()) return Fail(status.ToString());
  const uint64_t bytes_per_step =
      (ddp.bytes_all_reduced() - bytes_before) / static_cast<uint64_t>(steps);

  // Every rank's median, gathered by a sum over one slot per rank.
  std::vector<double> rank_medians(g.size(), 0.0);
  rank_medians[g.rank()] = Median(step_ms);
  if (absl::Status s = g.AllReduceSum(rank_medians.data(), rank_medians.size());
      !s.ok()) {
    return Fail(s.ToString());
  }
  if (g.rank() != 0) return 0;

  double sum = 0;
  for (double t : step_ms) sum += t;
  OrderedJson result = OrderedJson::object();
  result["model"] = spec->name;
  result["ranks"] = g.size();
  result["backend"] = g.backend();
  result["threads"] = GetNumThreads();
  result["batch_size"] = setting.batch_size;
  result["input_size"] = setting.input_size;
  result["mode"] = mode;
  result["overlap"] = ddp_options.overlap;
  result["bf16_compress"] = ddp_options.bf16_compress;
  result["bucket_mb"] = JsonNumber(bucket_mb, 6);
  result["buckets"] = ddp.buckets().size();
  result["buckets_started_in_backward"] = ddp.buckets_started_in_backward();
  result["parameters"] = parameters;
  result["gradient_bytes"] = parameters * static_cast<int64_t>(sizeof(float));
  result["bytes_all_reduced_per_step"] = bytes_per_step;
  result["warmup"] = warmup;
  result["steps"] = steps;
  OrderedJson times = OrderedJson::array();
  for (double t : step_ms) times.push_back(JsonNumber(t, 5));
  result["step_ms"] = times;
  result["median_step_ms"] = JsonNumber(Median(step_ms), 5);
  result["mean_step_ms"] = JsonNumber(sum / steps, 5);
  result["min_step_ms"] =
      JsonNumber(*std::min_element(step_ms.begin(), step_ms.end()), 5);
  OrderedJson medians = OrderedJson::array();
  for (double t : rank_medians) medians.push_back(JsonNumber(t, 5));
  result["rank_median_step_ms"] = medians;
  result["cpu"] = CpuDescription();
  std::printf("%s\n", JsonText(result).c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace dive::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dive::bench::Run();
}
