// A small data-parallel training run for mpi_test.cc, launched once without
// mpirun (the single-process reference) and under `mpirun -np S`:
//
//   ddp_test_worker --mode=train --out=/tmp/w           # reference
//   mpirun -np 2 ddp_test_worker --mode=train --out=/tmp/d
//
// --mode=train: a 2-layer MLP on synthetic data, SGD with momentum and weight
//   decay, `--steps` steps on global batches of `--global_batch` examples,
//   each rank taking its contiguous share of every batch. Every rank starts
//   from a different random initialization (seed + rank), so the replicas
//   only agree if BroadcastParameters works. Each rank writes its final
//   parameters to <out>.rank<K>, one value per line.
//   --overlap, --bf16_compress and --bucket_bytes set the DDP options; rank
//   0 prints the bytes it all-reduced.
// --mode=exit: rank 1 exits with code 3 right away; rank 0 waits in an
//   all-reduce that can never complete. mpirun must end the job.
// --mode=kill: the same, but rank 1 kills itself with SIGKILL.
// --mode=hang: rank 1 sleeps; rank 0 waits in an all-reduce, and its
//   watchdog (--timeout_s) must abort the job.

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "autograd/functions.h"
#include "autograd/variable.h"
#include "distributed/data_parallel.h"
#include "distributed/mpi_process_group.h"
#include "distributed/sync_batch_norm.h"
#include "glog/logging.h"
#include "nn/batch_norm.h"
#include "optim/sgd.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

ABSL_FLAG(std::string, mode, "train", "train, sync_bn, exit, kill or hang");
ABSL_FLAG(std::string, out, "", "Prefix of the parameter files (train).");
ABSL_FLAG(int, steps, 12, "Training steps.");
ABSL_FLAG(int64_t, global_batch, 24, "Examples per step over all ranks.");
ABSL_FLAG(int64_t, bucket_bytes, 256, "DDP bucket size.");
ABSL_FLAG(double, timeout_s, 60, "Collective watchdog timeout.");
ABSL_FLAG(bool, overlap, true, "DDP: all-reduce during the backward pass.");
ABSL_FLAG(bool, bf16_compress, false, "DDP: send gradients as bf16.");

namespace dive::distributed {
namespace {

constexpr int64_t kExamples = 96;
constexpr int64_t kIn = 8, kHidden = 16, kClasses = 4;

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
  return 1;
}

absl::Status Train(ProcessGroup& group, const std::string& out) {
  const int64_t global_batch = absl::GetFlag(FLAGS_global_batch);
  if (global_batch % group.size() != 0) {
    return absl::InvalidArgumentError("global batch not divisible by size");
  }
  const int64_t b = global_batch / group.size();

  // Synthetic data, the same on every rank: labels from a fixed random
  // linear map, so the problem is learnable.
  Generator data_gen(1234);
  const Tensor x = data_gen.Normal({kExamples, kIn}, 0, 1);
  const Tensor w_true = data_gen.Normal({kIn, kClasses}, 0, 1);
  std::vector<int64_t> labels(kExamples);
  for (int64_t i = 0; i < kExamples; ++i) {
    int64_t best = 0;
    float best_score = -1e30f;
    for (int64_t c = 0; c < kClasses; ++c) {
      float score = 0;
      for (int64_t k = 0; k < kIn; ++k) {
        score += x.at<float>({i, k}) * w_true.at<float>({k, c});
      }
      if (score > best_score) best_score = score, best = c;
    }
    labels[i] = best;
  }
  const Tensor y = Tensor::FromInt64Vector(labels, {kExamples});

  // Different on every rank until broadcast.
  Generator init(77 + group.rank());
  std::vector<autograd::Variable> params = {
      // Unused: never gets a gradient. First, so that it is in the last
      // bucket and holds back no other from starting in the backward pass.
      autograd::Variable(init.Normal({3}, 0, 1), true),
      autograd::Variable(init.Normal({kHidden, kIn}, 0, 0.5f), true),
      autograd::Variable(init.Normal({kHidden}, 0, 0.1f), true),
      autograd::Variable(init.Normal({kClasses, kHidden}, 0, 0.5f), true),
      autograd::Variable(init.Normal({kClasses}, 0, 0.1f), true),
  };
  DataParallelOptions dpo;
  dpo.bucket_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_bucket_bytes));
  dpo.overlap = absl::GetFlag(FLAGS_overlap);
  dpo.bf16_compress = absl::GetFlag(FLAGS_bf16_compress);
  DistributedDataParallel ddp(group, params, dpo);
  if (absl::Status s = ddp.BroadcastParameters(); !s.ok()) return s;

  optim::SGDOptions so;
  so.lr = 0.2f;
  so.momentum = 0.9f;
  so.weight_decay = 1e-3f;
  optim::SGD sgd(params, so);
  for (int step = 0; step < absl::GetFlag(FLAGS_steps); ++step) {
    const int64_t start =
        (step * global_batch) % (kExamples - global_batch + 1) +
        group.rank() * b;
    const autograd::Variable xb(x.Slice(0, start, start + b).Contiguous());
    const Tensor yb = y.Slice(0, start, start + b).Contiguous();
    const autograd::Variable h = Relu(Linear(xb, params[1], params[2]));
    autograd::Variable loss =
        SoftmaxCrossEntropy(Linear(h, params[3], params[4]), yb);
    sgd.ZeroGrad();
    loss.Backward();
    if (absl::Status s = ddp.AllReduceGradients(); !s.ok()) return s;
    sgd.Step();
  }
  std::fprintf(stderr,
               "rank %d: %llu bytes all-reduced; %zu of %zu buckets started "
               "in the last backward pass\n",
               group.rank(),
               static_cast<unsigned long long>(ddp.bytes_all_reduced()),
               ddp.buckets_started_in_backward(), ddp.buckets().size());

  const std::string path = absl::StrCat(out, ".rank", group.rank());
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return absl::InternalError("cannot write " + path);
  for (const autograd::Variable& p : params) {
    for (float v : p.data().ToVector()) std::fprintf(f, "%.9g\n", v);
  }
  std::fclose(f);
  return absl::OkStatus();
}

// --mode=sync_bn: a BatchNorm2d(3) converted to SyncBatchNorm, one
// training step on this rank's contiguous share of a fixed global batch of
// 32 x 3 x 4 x 4, loss = mean over the rank's examples of sum(y * r) for a
// fixed r, gradients of gamma and beta averaged by DDP. Writes the running
// statistics, gamma's and beta's gradients, then this rank's y and its
// input gradient divided by the number of ranks (each rank's is that of
// the sum of the ranks' losses, see sync_batch_norm.h), so that one
// process on the whole batch must write the same numbers.
absl::Status SyncBatchNormStep(ProcessGroup& group, const std::string& out) {
  constexpr int64_t kBatch = 32, kC = 3, kH = 4;
  if (kBatch % group.size() != 0) {
    return absl::InvalidArgumentError("batch not divisible by size");
  }
  const int64_t b = kBatch / group.size(), start = group.rank() * b;
  Generator gen(4321);
  // Channels with different means and scales.
  Tensor x = gen.Normal({kBatch, kC, kH, kH}, 0, 1);
  for (int64_t n = 0; n < kBatch; ++n) {
    for (int64_t c = 0; c < kC; ++c) {
      for (int64_t i = 0; i < kH * kH; ++i) {
        float& v = x.data<float>()[(n * kC + c) * kH * kH + i];
        v = v * (1 + c) + 2.0f * c - 1;
      }
    }
  }
  const Tensor r = gen.Normal({kBatch, kC, kH, kH}, 0, 1);
  nn::BatchNorm2d bn(kC);
  {
    // gamma and beta away from 1 and 0.
    float* g = bn.weight().data().data<float>();
    float* be = bn.bias().data().data<float>();
    for (int64_t c = 0; c < kC; ++c) g[c] = 0.5f + c, be[c] = 0.1f * c;
  }
  SyncBatchNormLayers sync = ConvertSyncBatchNorm(bn, group);
  DistributedDataParallel ddp(group, bn.Parameters());
  autograd::Variable xb(x.Slice(0, start, start + b).Contiguous(), true);
  const autograd::Variable y = bn(xb);
  const Tensor rb = r.Slice(0, start, start + b).Contiguous();
  autograd::Variable loss =
      autograd::Sum(y * autograd::Variable(rb)) * (1.0f / b);
  loss.Backward();
  if (absl::Status s = ddp.AllReduceGradients(); !s.ok()) return s;
  if (absl::Status s = sync.TakeError(); !s.ok()) return s;
  std::fprintf(stderr, "rank %d: %d SyncBatchNorm layers\n", group.rank(),
               sync.count());

  const std::string path = absl::StrCat(out, ".rank", group.rank());
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return absl::InternalError("cannot write " + path);
  const auto write = [&](const Tensor& t, float scale) {
    for (float v : t.ToVector()) std::fprintf(f, "%.9g\n", v * scale);
  };
  write(bn.running_mean(), 1);
  write(bn.running_var(), 1);
  write(bn.weight().grad(), 1);
  write(bn.bias().grad(), 1);
  write(y.data(), 1);
  write(xb.grad(), 1.0f / group.size());
  std::fclose(f);
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  ProcessGroupOptions options;
  options.collective_timeout = absl::Seconds(absl::GetFlag(FLAGS_timeout_s));
  absl::StatusOr<std::unique_ptr<ProcessGroup>> made =
      CreateProcessGroup(options);
  if (!made.ok()) return Fail(made.status());
  ProcessGroup& group = **made;
  std::fprintf(stderr, "rank %d of %d (%s)\n", group.rank(), group.size(),
               group.backend().c_str());

  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "train") {
    if (absl::Status s = Train(group, absl::GetFlag(FLAGS_out)); !s.ok()) {
      return Fail(s);
    }
    return 0;
  }
  if (mode == "sync_bn") {
    if (absl::Status s = SyncBatchNormStep(group, absl::GetFlag(FLAGS_out));
        !s.ok()) {
      return Fail(s);
    }
    return 0;
  }
  if (mode == "exit" || mode == "hang" || mode == "kill") {
    if (group.rank() == 1) {
      if (mode == "kill") {
        std::fprintf(stderr, "rank 1: simulated SIGKILL\n");
        std::fflush(stderr);
        kill(getpid(), SIGKILL);
      }
      if (mode == "exit") {
        std::fprintf(stderr, "rank 1: simulated failure, exiting with 3\n");
        std::fflush(stderr);
        std::_Exit(3);
      }
      std::fprintf(stderr, "rank 1: simulated hang\n");
      std::this_thread::sleep_for(std::chrono::seconds(120));
      return 0;
    }
    float x = 1;
    absl::Status s = group.AllReduceSum(&x, 1);
    // Not reached when the job is torn down as it should be.
    std::fprintf(stderr, "rank %d: all-reduce returned: %s\n", group.rank(),
                 s.ToString().c_str());
    return s.ok() ? 0 : 1;
  }
  return Fail(absl::InvalidArgumentError("unknown --mode=" + mode));
}

}  // namespace
}  // namespace dive::distributed

int main(int argc, char** argv) { return dive::distributed::Main(argc, argv); }
