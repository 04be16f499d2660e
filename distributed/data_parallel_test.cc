#include "distributed/data_parallel.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "distributed/process_group.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tensor/tensor.h"

namespace dive::distributed {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

// A stand-in for rank 0 of a group of `size`: the other ranks' contribution
// to each all-reduce comes from `peers` (default: the same data again, as if
// every rank had computed the same gradients), and a broadcast from another
// root fills the buffer with `broadcast_byte`.
class FakeGroup : public ProcessGroup {
 public:
  explicit FakeGroup(int size) : size_(size) {}
  int rank() const override { return 0; }
  int size() const override { return size_; }
  std::string backend() const override { return "fake"; }
  absl::Status AllReduceSum(float* data, size_t n) override {
    messages.push_back(n);
    std::vector<float> mine(data, data + n);
    if (peers) {
      peers(data, n);  // the sum of the other ranks' buffers
    } else {
      for (size_t i = 0; i < n; ++i) data[i] = mine[i] * (size_ - 1);
    }
    for (size_t i = 0; i < n; ++i) data[i] += mine[i];
    return status;
  }
  absl::Status AllReduceSum(double*, size_t) override { return status; }
  absl::Status BroadcastBytes(void* data, size_t nbytes, int root) override {
    messages.push_back(nbytes);
    if (root != 0) std::memset(data, broadcast_byte, nbytes);
    return status;
  }
  absl::Status Barrier() override { return status; }
  [[noreturn]] void Abort(int code) override { std::exit(code); }

  std::vector<size_t> messages;
  std::function<void(float*, size_t)> peers;
  int broadcast_byte = 0;
  absl::Status status;

 private:
  int size_;
};

autograd::Variable Param(std::vector<float> values) {
  const int64_t n = static_cast<int64_t>(values.size());
  return autograd::Variable(Tensor::FromVector(values, {n}), true);
}

TEST(DistributedDataParallelTest, BucketsPackConsecutiveParametersFromTheEnd) {
  FakeGroup group(2);
  std::vector<autograd::Variable> params = {
      Param(std::vector<float>(3)), Param(std::vector<float>(5)),
      Param(std::vector<float>(2)), Param(std::vector<float>(10)),
      Param(std::vector<float>(1)), Param(std::vector<float>(1))};
  DataParallelOptions options;
  options.bucket_bytes = 8 * sizeof(float);
  DistributedDataParallel ddp(group, params, options);
  // In the backward pass's order: [1 + 1] [10: too large, alone] [5 + 2] [3]
  ASSERT_EQ(ddp.buckets().size(), 4u);
  EXPECT_EQ(ddp.buckets()[0].begin, 4u);
  EXPECT_EQ(ddp.buckets()[0].end, 6u);
  EXPECT_EQ(ddp.buckets()[1].numel, 10u);
  EXPECT_EQ(ddp.buckets()[2].begin, 1u);
  EXPECT_EQ(ddp.buckets()[2].end, 3u);
  EXPECT_EQ(ddp.buckets()[2].numel, 7u);
  EXPECT_EQ(ddp.buckets()[3].begin, 0u);
  EXPECT_EQ(ddp.buckets()[3].end, 1u);

  for (autograd::Variable& p : params) p.set_grad(Tensor::Ones(p.shape()));
  ASSERT_TRUE(ddp.AllReduceGradients().ok());
  // One message per bucket: its gradients and one flag per parameter.
  EXPECT_THAT(group.messages, ElementsAre(2 + 2, 10 + 1, 7 + 2, 3 + 1));
  EXPECT_EQ(ddp.bytes_all_reduced(), (4 + 11 + 9 + 4) * sizeof(float));
}

TEST(DistributedDataParallelTest, DefaultBucketsArePyTorchs25MiB) {
  FakeGroup group(2);
  std::vector<autograd::Variable> params;
  // 25 MiB is 6,553,600 floats: 6 parameters of 1 Mi floats fill one bucket.
  for (int i = 0; i < 7; ++i) {
    params.push_back(
        autograd::Variable(Tensor::Zeros({int64_t{1} << 20}), true));
  }
  DistributedDataParallel ddp(group, params);
  ASSERT_EQ(ddp.buckets().size(), 2u);
  EXPECT_EQ(ddp.buckets()[0].numel, size_t{6} << 20);
  EXPECT_EQ(ddp.buckets()[1].numel, size_t{1} << 20);
}

TEST(DistributedDataParallelTest, AveragesGradientsOverRanks) {
  FakeGroup group(4);
  autograd::Variable a = Param({0, 0, 0});
  autograd::Variable b = Param({0, 0});
  a.set_grad(Tensor::FromVector({1, 2, 3}, {3}));
  b.set_grad(Tensor::FromVector({4, 8}, {2}));
  const Tensor old_a = a.grad();
  // The three other ranks together contribute 9, 10, 11, 12, 16 and both
  // flags of 3.
  group.peers = [](float* data, size_t n) {
    ASSERT_EQ(n, 7u);
    const float sums[] = {9, 10, 11, 12, 16, 3, 3};
    std::memcpy(data, sums, sizeof(sums));
  };
  DistributedDataParallel ddp(group, {a, b});
  ASSERT_TRUE(ddp.AllReduceGradients().ok());
  EXPECT_THAT(a.grad().ToVector(), ElementsAre(2.5f, 3.0f, 3.5f));
  EXPECT_THAT(b.grad().ToVector(), ElementsAre(4.0f, 6.0f));
  // A fresh tensor: the old gradient is not written.
  EXPECT_FALSE(a.grad().SharesStorage(old_a));
  EXPECT_THAT(old_a.ToVector(), ElementsAre(1, 2, 3));
}

TEST(DistributedDataParallelTest, UndefinedGradientsCountAsZero) {
  FakeGroup group(2);
  autograd::Variable used_here = Param({0, 0});
  autograd::Variable used_elsewhere = Param({0, 0});
  autograd::Variable unused = Param({0});
  used_here.set_grad(Tensor::FromVector({2, 4}, {2}));
  // The other rank used only `used_elsewhere`.
  group.peers = [](float* data, size_t n) {
    ASSERT_EQ(n, 5u + 3u);
    const float other[] = {0, 0, 6, 8, 0, 0, 1, 0};
    std::memcpy(data, other, sizeof(other));
  };
  DistributedDataParallel ddp(group, {used_here, used_elsewhere, unused});
  ASSERT_TRUE(ddp.AllReduceGradients().ok());
  EXPECT_THAT(used_here.grad().ToVector(), ElementsAre(1, 2));
  EXPECT_THAT(used_elsewhere.grad().ToVector(), ElementsAre(3, 4));
  EXPECT_FALSE(unused.grad().defined());
}

TEST(DistributedDataParallelTest, StridedGradient) {
  FakeGroup group(2);
  autograd::Variable w(Tensor::Zeros({2, 3}), true);
  w.set_grad(Tensor::FromVector({1, 2, 3, 4, 5, 6}, {3, 2}).Transpose(0, 1));
  DistributedDataParallel ddp(group, {w});
  ASSERT_TRUE(ddp.AllReduceGradients().ok());
  EXPECT_THAT(w.grad().ToVector(), ElementsAre(1, 3, 5, 2, 4, 6));
}

TEST(DistributedDataParallelTest, ErrorsAreReturned) {
  FakeGroup group(2);
  autograd::Variable w = Param({1});
  w.set_grad(Tensor::FromVector({1}, {1}));
  group.status = absl::UnavailableError("rank 0: MPI_Allreduce failed");
  DistributedDataParallel ddp(group, {w});
  EXPECT_EQ(ddp.AllReduceGradients().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ddp.BroadcastParameters().code(), absl::StatusCode::kUnavailable);
}

TEST(DistributedDataParallelTest, SingleProcessLeavesGradientsAlone) {
  LocalProcessGroup group;
  autograd::Variable w = Param({1, 2});
  w.set_grad(Tensor::FromVector({3, 4}, {2}));
  const Tensor grad = w.grad();
  DistributedDataParallel ddp(group, {w});
  ASSERT_TRUE(ddp.BroadcastParameters().ok());
  ASSERT_TRUE(ddp.AllReduceGradients().ok());
  EXPECT_TRUE(w.grad().SharesStorage(grad));
  EXPECT_THAT(w.data().ToVector(), ElementsAre(1, 2));
}

// y = Sum(Linear(Relu(Linear(x, w1, b1)), w2, b2)) on fixed data.
struct TwoLayers {
  autograd::Variable x{Tensor::FromVector({1, -2, 3, 0.5f, 2, -1}, {2, 3})};
  std::vector<autograd::Variable> params = {
      autograd::Variable(
          Tensor::FromVector({0.1f, 0.2f, -0.3f, 0.4f, 0.5f, 0.6f, -0.7f,
                              0.8f, 0.9f, 1.0f, -1.1f, 1.2f},
                             {4, 3}),
          true),
      autograd::Variable(Tensor::FromVector({0.1f, -0.1f, 0.2f, 0}, {4}),
                         true),
      autograd::Variable(
          Tensor::FromVector({0.3f, -0.2f, 0.1f, 0.5f, 0.7f, 0.1f, -0.4f, 0.2f},
                             {2, 4}),
          true),
      autograd::Variable(Tensor::FromVector({0.05f, -0.05f}, {2}), true),
  };
  autograd::Variable hidden;

  autograd::Variable Loss() {
    hidden = autograd::Relu(autograd::Linear(x, params[0], params[1]));
    return autograd::Sum(autograd::Linear(hidden, params[2], params[3]));
  }
};

// Gradients of the same two layers, all-reduced by a DDP with `options`
// over a fake group whose peers contribute 0.5, 1.5, 2.5, ... (so that the
// mean is not the rank's own gradient).
std::vector<std::vector<float>> ReducedGradients(DataParallelOptions options,
                                                 FakeGroup* group_out = nullptr,
                                                 int backward_passes = 1) {
  FakeGroup group(2);
  group.peers = [](float* data, size_t n) {
    for (size_t i = 0; i < n; ++i) data[i] = 0.5f + i;
  };
  TwoLayers net;
  DistributedDataParallel ddp(group, net.params, options);
  for (int pass = 0; pass < backward_passes; ++pass) net.Loss().Backward();
  EXPECT_TRUE(ddp.AllReduceGradients().ok());
  std::vector<std::vector<float>> grads;
  for (const autograd::Variable& p : net.params) {
    grads.push_back(p.grad().defined() ? p.grad().ToVector()
                                       : std::vector<float>());
  }
  if (group_out != nullptr) group_out->messages = group.messages;
  return grads;
}

TEST(DistributedDataParallelTest, OverlapStartsBucketsDuringTheBackwardPass) {
  FakeGroup group(2);
  TwoLayers net;
  DataParallelOptions options;
  options.bucket_bytes = 4;  // one parameter a bucket
  DistributedDataParallel ddp(group, net.params, options);
  autograd::Variable loss = net.Loss();
  // Runs before the first layer's backward: by then the second layer's
  // gradients (b2, then w2) are complete and on their way.
  std::vector<size_t> sent_before_first_layer;
  net.hidden.RegisterHook([&](const Tensor&) {
    sent_before_first_layer = group.messages;
    return Tensor();
  });
  loss.Backward();
  EXPECT_THAT(sent_before_first_layer, ElementsAre(2 + 1, 8 + 1));
  EXPECT_THAT(group.messages, ElementsAre(3, 9, 5, 13));
  ASSERT_TRUE(ddp.AllReduceGradients().ok());
  EXPECT_EQ(ddp.buckets_started_in_backward(), 4u);
  EXPECT_EQ(group.messages.size(), 4u);
}

TEST(DistributedDataParallelTest, OverlapIsBitIdenticalToAfterBackward) {
  for (size_t bucket_bytes : {size_t{4}, size_t{40}, size_t{1} << 20}) {
    DataParallelOptions overlapped, after;
    overlapped.bucket_bytes = after.bucket_bytes = bucket_bytes;
    after.overlap = false;
    FakeGroup sent_overlapped(2), sent_after(2);
    const auto a = ReducedGradients(overlapped, &sent_overlapped);
    const auto b = ReducedGradients(after, &sent_after);
    EXPECT_EQ(a, b) << bucket_bytes;
    EXPECT_EQ(sent_overlapped.messages, sent_after.messages);
    // Not the rank's own gradient: the peers' part is in.
    TwoLayers net;
    net.Loss().Backward();
    EXPECT_NE(a[0], net.params[0].grad().ToVector());
  }
}

TEST(DistributedDataParallelTest, SecondBackwardPassSendsTheSumAgain) {
  // Gradient accumulation: two passes before the all-reduce send every
  // bucket twice (the first round is dropped) and average the sums.
  DataParallelOptions options;
  options.bucket_bytes = 16;
  FakeGroup sent_twice(2), sent_once(2);
  const auto twice = ReducedGradients(options, &sent_twice, 2);
  options.overlap = false;
  const auto after = ReducedGradients(options, &sent_once, 2);
  EXPECT_EQ(twice, after);
  EXPECT_EQ(sent_twice.messages.size(), 2 * sent_once.messages.size());
}

TEST(DistributedDataParallelTest, UnusedParameterHoldsBackLaterBuckets) {
  FakeGroup group(2);
  autograd::Variable used = Param({1, 2});
  autograd::Variable unused = Param({3});
  autograd::Variable first = Param({4, 5, 6});
  DataParallelOptions options;
  options.bucket_bytes = 4;
  // Buckets in order: [first], [unused], [used].
  DistributedDataParallel ddp(group, {used, unused, first}, options);
  (autograd::Sum(first * first) + autograd::Sum(used)).Backward();
  // `first`'s bucket goes; `used` is complete but waits behind `unused`.
  EXPECT_THAT(group.messages, ElementsAre(3 + 1));
  ASSERT_TRUE(ddp.AllReduceGradients().ok());
  EXPECT_THAT(group.messages, ElementsAre(3 + 1, 1 + 1, 2 + 1));
  EXPECT_FALSE(unused.grad().defined());
  EXPECT_THAT(used.grad().ToVector(), ElementsAre(1, 1));
  EXPECT_THAT(first.grad().ToVector(), ElementsAre(8, 10, 12));
}

TEST(DistributedDataParallelTest, Bf16CompressionHalvesTheBytes) {
  DataParallelOptions plain, compressed;
  plain.bucket_bytes = compressed.bucket_bytes = 16;
  compressed.bf16_compress = true;
  FakeGroup group(2);
  TwoLayers a, b;
  DistributedDataParallel ddp_plain(group, a.params, plain);
  DistributedDataParallel ddp_bf16(group, b.params, compressed);
  a.Loss().Backward();
  b.Loss().Backward();
  ASSERT_TRUE(ddp_plain.AllReduceGradients().ok());
  ASSERT_TRUE(ddp_bf16.AllReduceGradients().ok());
  EXPECT_EQ(ddp_bf16.bytes_all_reduced() * 2, ddp_plain.bytes_all_reduced());
  // Both ranks hold the same gradients: the mean is each one, to bf16's
  // relative precision of 2^-8.
  for (size_t i = 0; i < a.params.size(); ++i) {
    const std::vector<float> x = a.params[i].grad().ToVector();
    const std::vector<float> y = b.params[i].grad().ToVector();
    ASSERT_EQ(x.size(), y.size());
    for (size_t j = 0; j < x.size(); ++j) {
      EXPECT_NEAR(y[j], x[j], std::abs(x[j]) * 0x1p-8f) << i << "," << j;
    }
  }
}

TEST(BroadcastTensorsTest, OverwritesInPlaceWhateverTheDtypeAndLayout) {
  FakeGroup group(2);
  group.broadcast_byte = 0;  // root's tensors are all zeros
  Tensor f = Tensor::FromVector({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor strided = Tensor::FromVector({1, 2, 3, 4}, {2, 2}).Transpose(0, 1);
  Tensor counter = Tensor::FromInt64Vector({7}, {});
  ASSERT_TRUE(BroadcastTensors(group, {f, strided, counter}, /*root=*/1).ok());
  EXPECT_THAT(group.messages, ElementsAre(6 * 4, 4 * 4, 8));
  EXPECT_THAT(f.ToVector(), ElementsAreArray(std::vector<float>(6, 0)));
  EXPECT_THAT(strided.ToVector(), ElementsAreArray(std::vector<float>(4, 0)));
  EXPECT_THAT(counter.ToInt64Vector(), ElementsAre(0));
}

TEST(ProcessGroupTest, LocalGroupIsOneRank) {
  LocalProcessGroup group;
  EXPECT_EQ(group.rank(), 0);
  EXPECT_EQ(group.size(), 1);
  float x[2] = {1, 2};
  ASSERT_TRUE(group.AllReduceMean(x, 2).ok());
  EXPECT_THAT(x, ElementsAre(1, 2));
  ASSERT_TRUE(group.Broadcast(x, 2, 0).ok());
  ASSERT_TRUE(group.Barrier().ok());
  EXPECT_DEATH(group.Broadcast(x, 2, 1).IgnoreError(),
               "root 1 is not a rank of a group of size 1");
}

TEST(ProcessGroupTest, AllReduceMeanDividesBySize) {
  FakeGroup group(4);
  float x[2] = {1, 6};
  ASSERT_TRUE(group.AllReduceMean(x, 2).ok());
  EXPECT_THAT(x, ElementsAre(1, 6));  // four equal contributions
}

TEST(ProcessGroupTest, LaunchedByMpiReadsTheLaunchersVariables) {
  if (std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr ||
      std::getenv("PMIX_RANK") != nullptr) {
    GTEST_SKIP() << "running under an MPI launcher";
  }
  EXPECT_FALSE(LaunchedByMpi());
  setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  EXPECT_TRUE(LaunchedByMpi());
  unsetenv("OMPI_COMM_WORLD_SIZE");
  setenv("PMIX_RANK", "0", 1);
  EXPECT_TRUE(LaunchedByMpi());
  unsetenv("PMIX_RANK");
  EXPECT_FALSE(LaunchedByMpi());
}

}  // namespace
}  // namespace dive::distributed
