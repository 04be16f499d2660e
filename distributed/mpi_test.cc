// Launches ddp_test_worker under mpirun on this machine (ranks talk over
// shared memory or loopback TCP) and checks that
//   * S ranks training with DistributedDataParallel end with the weights of
//     one process training on the combined batches, and with bit-identical
//     replicas;
//   * when a rank exits or hangs, the others end promptly (mpirun's teardown
//     or the collective watchdog) with a message saying so.

#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "distributed/testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/cpp/runfiles/runfiles.h"

namespace dive::distributed {
namespace {

using ::bazel::tools::cpp::runfiles::Runfiles;
using ::testing::HasSubstr;
using ::testing::Not;

std::vector<double> ReadValues(const std::string& path) {
  std::ifstream in(path);
  std::vector<double> values;
  double v;
  while (in >> v) values.push_back(v);
  return values;
}

class MpiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    runfiles_.reset(Runfiles::CreateForTest(&error));
    ASSERT_NE(runfiles_, nullptr) << error;
    worker_ = runfiles_->Rlocation("dive/distributed/ddp_test_worker");
    ASSERT_EQ(RunCommand("mpirun --version", 30).exit_code, 0)
        << "mpirun not found; run tools/setup.sh (openmpi-bin)";
    const char* tmp = std::getenv("TEST_TMPDIR");
    tmp_ = tmp != nullptr ? tmp : "/tmp";
  }

  // mpirun for `np` ranks on this machine. --allow-run-as-root: CI runs as
  // root. --oversubscribe: more ranks than cores is fine for a test.
  // Interfaces limited to loopback so no other network is probed.
  std::string Mpirun(int np, const std::string& btl = "self,vader,tcp") {
    return absl::StrCat(
        MpiEnv(),
        "mpirun --allow-run-as-root --oversubscribe --bind-to none -np ", np,
        " --mca btl ", btl,
        " --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo ", worker_);
  }

  void ExpectSameAsSingleProcess(int np, const std::string& btl) {
    const std::string ref = absl::StrCat(tmp_, "/ref");
    const std::string dist = absl::StrCat(tmp_, "/dist_", np);
    RunResult single = RunCommand(absl::StrCat(worker_, " --out=", ref), 60);
    ASSERT_EQ(single.exit_code, 0) << single.output;
    RunResult multi =
        RunCommand(absl::StrCat(Mpirun(np, btl), " --out=", dist), 60);
    ASSERT_EQ(multi.exit_code, 0) << multi.output;
    EXPECT_THAT(multi.output,
                HasSubstr(absl::StrCat("rank 1 of ", np, " (mpi)")));

    const std::vector<double> expected = ReadValues(ref + ".rank0");
    ASSERT_EQ(expected.size(), 16u * 8 + 16 + 4 * 16 + 4 + 3);
    for (int rank = 0; rank < np; ++rank) {
      const std::vector<double> got =
          ReadValues(absl::StrCat(dist, ".rank", rank));
      ASSERT_EQ(got.size(), expected.size()) << "rank " << rank;
      // Only the order of float additions differs, so the weights agree to
      // rounding: relative error of the whole vector, and of each weight
      // (scaled by at least 1, the weights' typical size).
      double diff2 = 0, norm2 = 0, max_err = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        const double d = got[i] - expected[i];
        diff2 += d * d;
        norm2 += expected[i] * expected[i];
        max_err = std::max(max_err,
                           std::abs(d) / std::max(1.0, std::abs(expected[i])));
      }
      EXPECT_LT(std::sqrt(diff2 / norm2), 1e-5)
          << "rank " << rank << " of " << np;
      EXPECT_LT(max_err, 1e-5) << "rank " << rank << " of " << np;
      if (rank > 0) {
        // Replicas apply identical updates: bit-identical weights.
        EXPECT_EQ(got, ReadValues(absl::StrCat(dist, ".rank0")))
            << "rank " << rank << " differs from rank 0";
      }
    }
  }

  // Two ranks of the worker with `flags`, a job that must fail: it ends
  // (no hang, within 30 s) with a non-zero exit code, and no all-reduce
  // returns.
  RunResult RunFailingJob(const std::string& flags) {
    RunResult r = RunCommand(absl::StrCat(Mpirun(2), " ", flags), 60);
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.exit_code, 124) << "timed out (hang):\n" << r.output;
    EXPECT_LT(r.seconds, 30) << r.output;
    EXPECT_THAT(r.output, Not(HasSubstr("all-reduce returned")));
    return r;
  }

  std::unique_ptr<Runfiles> runfiles_;
  std::string worker_;
  std::string tmp_;
};

TEST_F(MpiTest, TwoRanksMatchOneProcessOnTheCombinedBatch) {
  ExpectSameAsSingleProcess(2, "self,vader,tcp");
}

// The transport used between machines.
TEST_F(MpiTest, TwoRanksOverLoopbackTcpMatchOneProcess) {
  ExpectSameAsSingleProcess(2, "self,tcp");
}

TEST_F(MpiTest, ThreeRanksMatchOneProcess) {
  ExpectSameAsSingleProcess(3, "self,vader,tcp");
}

// Runs the worker on 2 ranks with `flags`; the weights of rank 0 and its
// output.
std::vector<double> RunTwoRanks(const std::string& mpirun,
                                const std::string& out,
                                const std::string& flags,
                                std::string* output) {
  RunResult r = RunCommand(absl::StrCat(mpirun, " --out=", out, " ", flags),
                           120);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  *output = r.output;
  return ReadValues(out + ".rank0");
}

TEST_F(MpiTest, OverlapIsBitIdenticalToAllReduceAfterBackward) {
  // 20 steps with 4 buckets (64 bytes): the same buffers through the same
  // MPI_Iallreduce calls, started during or after the backward pass.
  const std::string flags = "--steps=20 --bucket_bytes=64";
  std::string overlapped_log, after_log;
  const std::vector<double> overlapped =
      RunTwoRanks(Mpirun(2), tmp_ + "/overlap",
                  flags + " --overlap=true", &overlapped_log);
  const std::vector<double> after = RunTwoRanks(Mpirun(2), tmp_ + "/after", flags + " --overlap=false", &after_log);
  ASSERT_EQ(overlapped.size(), 16u * 8 + 16 + 4 * 16 + 4 + 3);
  EXPECT_EQ(overlapped, after);
  // With overlap, the 4 buckets of the used parameters went out during the
  // backward pass; the last (the unused parameter's) after it.
  EXPECT_THAT(overlapped_log,
              HasSubstr("4 of 5 buckets started in the last backward pass"));
  EXPECT_THAT(after_log,
              HasSubstr("0 of 5 buckets started in the last backward pass"));
}

TEST_F(MpiTest, Bf16CompressionHalvesTheBytesAndStaysClose) {
  const std::string flags = "--steps=12 --bucket_bytes=64";
  std::string plain_log, bf16_log;
  const std::vector<double> plain =
      RunTwoRanks(Mpirun(2), tmp_ + "/plain", flags, &plain_log);
  const std::vector<double> bf16 = RunTwoRanks(Mpirun(2), tmp_ + "/bf16", flags + " --bf16_compress", &bf16_log);
  // 5 buckets of 4 + 1, 64 + 1, 16 + 1, 128 + 1 and 3 + 1 values, 12 steps.
  const int values = (5 + 65 + 17 + 129 + 4) * 12;
  EXPECT_THAT(plain_log, HasSubstr(absl::StrCat("rank 0: ", values * 4,
                                                " bytes all-reduced")));
  EXPECT_THAT(bf16_log, HasSubstr(absl::StrCat("rank 0: ", values * 2,
                                               " bytes all-reduced")));
  ASSERT_EQ(bf16.size(), plain.size());
  double diff2 = 0, norm2 = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    diff2 += (bf16[i] - plain[i]) * (bf16[i] - plain[i]);
    norm2 += plain[i] * plain[i];
  }
  // bf16 keeps 8 bits: gradients within 2^-8, weights after 12 steps close.
  EXPECT_LT(std::sqrt(diff2 / norm2), 1e-2);
  EXPECT_GT(diff2, 0);  // it did round
  // Replicas stay bit-identical with compression too.
  EXPECT_EQ(ReadValues(tmp_ + "/bf16.rank1"), bf16);
}

TEST_F(MpiTest, SyncBatchNormOnTwoRanksOfSixteenIsOneProcessOfThirtyTwo) {
  // Plain BatchNorm2d on the whole batch of 32 in one process, against
  // SyncBatchNorm on 2 ranks of 16: running statistics, gamma's and beta's
  // gradients (DDP-averaged), each rank's output and input gradient.
  const std::string ref = tmp_ + "/bn_ref", sync = tmp_ + "/bn_sync";
  RunResult single =
      RunCommand(absl::StrCat(worker_, " --mode=sync_bn --out=", ref), 60);
  ASSERT_EQ(single.exit_code, 0) << single.output;
  RunResult multi = RunCommand(
      absl::StrCat(Mpirun(2), " --mode=sync_bn --out=", sync), 60);
  ASSERT_EQ(multi.exit_code, 0) << multi.output;
  EXPECT_THAT(multi.output, HasSubstr("rank 1: 1 SyncBatchNorm layers"));
  EXPECT_THAT(single.output, HasSubstr("rank 0: 0 SyncBatchNorm layers"));

  const std::vector<double> expected = ReadValues(ref + ".rank0");
  const size_t kStats = 4 * 3, kPerRank = 16 * 3 * 4 * 4;
  ASSERT_EQ(expected.size(), kStats + 2 * 2 * kPerRank);
  const std::vector<double> r0 = ReadValues(sync + ".rank0");
  const std::vector<double> r1 = ReadValues(sync + ".rank1");
  ASSERT_EQ(r0.size(), kStats + 2 * kPerRank);
  ASSERT_EQ(r1.size(), r0.size());
  const auto near = [](double got, double want) {
    return std::abs(got - want) <= 1e-5 * std::max(1.0, std::abs(want));
  };
  for (size_t i = 0; i < kStats; ++i) {
    EXPECT_PRED2(near, r0[i], expected[i]) << "statistic/gradient " << i;
    EXPECT_EQ(r1[i], r0[i]) << i;
  }
  // Reference: y of all 32, then dx of all 32; each rank: its 16 of each.
  for (size_t i = 0; i < kPerRank; ++i) {
    EXPECT_PRED2(near, r0[kStats + i], expected[kStats + i]) << "y " << i;
    EXPECT_PRED2(near, r1[kStats + i], expected[kStats + kPerRank + i])
        << "y " << i;
    EXPECT_PRED2(near, r0[kStats + kPerRank + i],
                 expected[kStats + 2 * kPerRank + i])
        << "dx " << i;
    EXPECT_PRED2(near, r1[kStats + kPerRank + i],
                 expected[kStats + 3 * kPerRank + i])
        << "dx " << i;
  }
}

TEST_F(MpiTest, RankExitEndsTheJob) {
  // The watchdog is set far out: mpirun's teardown must end rank 0.
  const RunResult r = RunFailingJob("--mode=exit --timeout_s=100");
  EXPECT_THAT(r.output, HasSubstr("rank 1: simulated failure"));
  EXPECT_THAT(r.output, HasSubstr("exited"));
}

TEST_F(MpiTest, KilledRankEndsTheJobNamingIt) {
  // SIGKILL: no chance to say anything; mpirun names it and ends rank 0.
  const RunResult r = RunFailingJob("--mode=kill --timeout_s=100");
  EXPECT_THAT(r.output, HasSubstr("rank 1: simulated SIGKILL"));
  EXPECT_THAT(r.output, HasSubstr("process rank 1 with PID"));
  EXPECT_THAT(r.output, HasSubstr("signal 9"));
}

TEST_F(MpiTest, HungRankTripsTheWatchdogWhichNamesIt) {
  const RunResult r = RunFailingJob("--mode=hang --timeout_s=2");
  EXPECT_THAT(r.output,
              HasSubstr("rank 0: collective AllReduceSum did not complete "
                        "within 2 s; another rank probably failed: rank 1 has "
                        "not joined it (alive, in no collective, 1 behind: "
                        "hung, or on another code path)"));
}

}  // namespace
}  // namespace dive::distributed
