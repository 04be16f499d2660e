#include "distributed/data_parallel.h"

#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

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

TEST(DistributedDataParallelTest, BucketsPackConsecutiveParameters) {
  FakeGroup group(2);
  std::vector<autograd::Variable> params = {
      Param(std::vector<float>(3)), Param(std::vector<float>(5)),
      Param(std::vector<float>(2)), Param(std::vector<float>(10)),
      Param(std::vector<float>(1)), Param(std::vector<float>(1))};
  DataParallelOptions options;
  options.bucket_bytes = 8 * sizeof(float);
  DistributedDataParallel ddp(group, params, options);
  // [3 + 5] [2] [10: too large, alone] [1 + 1]
  ASSERT_EQ(ddp.buckets().size(), 4u);
  EXPECT_EQ(ddp.buckets()[0].begin, 0u);
  EXPECT_EQ(ddp.buckets()[0].end, 2u);
  EXPECT_EQ(ddp.buckets()[1].numel, 2u);
  EXPECT_EQ(ddp.buckets()[2].numel, 10u);
  EXPECT_EQ(ddp.buckets()[3].begin, 4u);
  EXPECT_EQ(ddp.buckets()[3].end, 6u);

  for (autograd::Variable& p : params) p.set_grad(Tensor::Ones(p.shape()));
  ASSERT_TRUE(ddp.AllReduceGradients().ok());
  // One message per bucket: its gradients and one flag per parameter.
  EXPECT_THAT(group.messages, ElementsAre(8 + 2, 2 + 1, 10 + 1, 2 + 2));
}

TEST(DistributedDataParallelTest, DefaultBucketsHoldManySmallTensors) {
  FakeGroup group(2);
  std::vector<autograd::Variable> params;
  for (int i = 0; i < 100; ++i)
    params.push_back(Param(std::vector<float>(100)));
  DistributedDataParallel ddp(group, params);
  EXPECT_EQ(ddp.buckets().size(), 1u);
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
