// Data-parallel training through the trainer binaries: //models/lenet:train
// launched by mpirun with 2 ranks on this machine, against the same run in
// one process.

#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "distributed/testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"
#include "tools/cpp/runfiles/runfiles.h"

namespace dive::train {
namespace {

using ::bazel::tools::cpp::runfiles::Runfiles;
using ::testing::HasSubstr;
using ::testing::Not;

using ::dive::distributed::MpiEnv;
using ::dive::distributed::RunCommand;
using ::dive::distributed::RunResult;

// `text` inside single quotes of a shell command.
std::string EscapeSingleQuotes(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out;
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

class DistributedTrainingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    runfiles_.reset(Runfiles::CreateForTest(&error));
    ASSERT_NE(runfiles_, nullptr) << error;
    train_ = runfiles_->Rlocation("dive/models/lenet/train");
    const std::string labels =
        runfiles_->Rlocation("fashion_mnist/train-labels-idx1-ubyte.gz");
    data_dir_ = labels.substr(0, labels.rfind('/'));
    ASSERT_EQ(RunCommand("mpirun --version", 30).exit_code, 0)
        << "mpirun not found; run tools/setup.sh (openmpi-bin)";
    const char* tmp = std::getenv("TEST_TMPDIR");
    tmp_ = tmp != nullptr ? tmp : "/tmp";
  }

  std::string Flags(const std::string& out) const {
    return absl::StrCat(" --data_dir=", data_dir_,
                        " --epochs=2 --train_limit=1024 --test_limit=300"
                        " --batch_size=64 --threads=1 --progress=false --out=",
                        out);
  }

  static std::string Mpirun() {
    return MpiEnv() +
           "mpirun --allow-run-as-root --oversubscribe --bind-to none"
           " --mca btl self,vader,tcp --mca btl_tcp_if_include lo"
           " --mca oob_tcp_if_include lo ";
  }

  std::unique_ptr<Runfiles> runfiles_;
  std::string train_;
  std::string data_dir_;
  std::string tmp_;
};

TEST_F(DistributedTrainingTest, TwoRanksTrainLikeOneProcess) {
  const std::string one = tmp_ + "/one", two = tmp_ + "/two";
  RunResult single = RunCommand(train_ + Flags(one), 120);
  ASSERT_EQ(single.exit_code, 0) << single.output;
  RunResult multi =
      RunCommand(absl::StrCat(Mpirun(), "-np 2 ", train_, Flags(two)), 120);
  ASSERT_EQ(multi.exit_code, 0) << multi.output;

  // Rank 0 alone reports, with the totals of both ranks.
  EXPECT_THAT(multi.output,
              HasSubstr("data-parallel over 2 processes of 32 examples"));
  EXPECT_EQ(Count(multi.output, "epoch 1: "), 1) << multi.output;
  EXPECT_EQ(Count(multi.output, "epoch 2: "), 1) << multi.output;
  for (const char* line : {"epoch 1: loss ", "epoch 2: loss "}) {
    const size_t a = single.output.find(line), b = multi.output.find(line);
    ASSERT_NE(a, std::string::npos) << single.output;
    ASSERT_NE(b, std::string::npos) << multi.output;
    // "loss L, train acc A, test acc T," agree to the printed digits.
    const size_t end =
        single.output.find(", ", single.output.find("test acc", a));
    EXPECT_EQ(multi.output.substr(b, end - a),
              single.output.substr(a, end - a));
  }

  absl::StatusOr<SafetensorsFile> expected =
      LoadSafetensors(one + "/model.safetensors");
  absl::StatusOr<SafetensorsFile> got =
      LoadSafetensors(two + "/model.safetensors");
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->tensors.size(), expected->tensors.size());
  double diff2 = 0, norm2 = 0;
  for (const auto& [name, e] : expected->tensors) {
    ASSERT_TRUE(got->tensors.count(name)) << name;
    const std::vector<float> x = e.ToVector();
    const std::vector<float> y = got->tensors.at(name).ToVector();
    ASSERT_EQ(x.size(), y.size()) << name;
    for (size_t i = 0; i < x.size(); ++i) {
      diff2 += (x[i] - y[i]) * (x[i] - y[i]);
      norm2 += x[i] * x[i];
      EXPECT_NEAR(y[i], x[i], 1e-5 * std::max(1.0f, std::abs(x[i])))
          << name << "[" << i << "]";
    }
  }
  EXPECT_LT(std::sqrt(diff2 / norm2), 1e-5);
}

TEST_F(DistributedTrainingTest,
       ResumeOnMoreRanksEndsAnEpochWhoseBatchesAreTaken) {
  // 1000 images in batches of 64: 16 batches per epoch in one process (the
  // last of 40), 15 on two ranks (they drop it). One process checkpoints
  // epoch 1's last step (16) and is killed in that save, after its commit
  // (DIVE_TEST_STOP_MID_COMMIT stops it there); resumed under -np 2, the
  // step used to abort both ranks ("first batch 16 not in [0, 15]").
  const std::string out = tmp_ + "/rank_change";
  const std::string flags =
      absl::StrCat(Flags(out), " --train_limit=1000 --checkpoint_every=16");
  RunResult killed = RunCommand(
      absl::StrCat(
          "sh -c 'DIVE_TEST_STOP_MID_COMMIT=1 ", train_, flags, " & p=$!; ",
          "for i in $(seq 1200); do ",
          "[ \"$(cut -d\" \" -f3 /proc/$p/stat)\" = T ] && break; sleep 0.1; ",
          "done; kill -9 $p; wait $p; echo killed: $?'"),
      150);
  ASSERT_THAT(killed.output, HasSubstr("killed: 137")) << killed.output;

  RunResult resumed = RunCommand(
      absl::StrCat(Mpirun(), "-np 2 ", train_, flags, " --resume"), 120);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output,
              HasSubstr("completed the checkpoint a killed run was saving"));
  EXPECT_THAT(resumed.output,
              HasSubstr("epoch 1 already took 16 batches, more than the 15 it "
                        "has over 2 processes: it ends there, and training "
                        "goes on with epoch 2"));
  EXPECT_THAT(resumed.output,
              HasSubstr("the rank count changed from 1 to 2 (the "
                        "checkpoint's run trained on 1 process, this one on "
                        "2 processes): the global batch stays "
                        "--batch_size=64"));
  EXPECT_THAT(resumed.output,
              HasSubstr("now 32 examples per rank instead of 64"));
  EXPECT_THAT(resumed.output,
              HasSubstr("the data order each rank sees and the batch split "
                        "are no longer the uninterrupted run's"));
  EXPECT_THAT(resumed.output,
              HasSubstr("each epoch now has 15 batches, not 16"));
  EXPECT_EQ(Count(resumed.output, "the rank count changed"), 1)
      << resumed.output;
  EXPECT_EQ(Count(resumed.output, "epoch 1: "), 1) << resumed.output;
  EXPECT_EQ(Count(resumed.output, "epoch 2: "), 1) << resumed.output;
  EXPECT_THAT(resumed.output, Not(HasSubstr("Check failed")));
}

TEST_F(DistributedTrainingTest, KilledRankEndsTheJobAndTheRunResumes) {
  // 1024 images in batches of 64: 16 steps an epoch, a checkpoint every 4.
  // Rank 0 stops itself (SIGSTOP) in its second save, at step 8, after the
  // commit (DIVE_TEST_STOP_MID_COMMIT=2): a moment when the job is surely
  // mid-epoch whatever the machine's speed. Then rank 1 gets SIGKILL.
  const std::string out = tmp_ + "/killed";
  const std::string flags = absl::StrCat(
      Flags(out), " --checkpoint_every=4 --collective_timeout=60");
  const std::string script = absl::StrCat(
      "DIVE_TEST_STOP_MID_COMMIT=2 ", Mpirun(),
      "-x DIVE_TEST_STOP_MID_COMMIT -np 2 ", train_, flags, R"sh( & m=$!
rank_pid() {
  for p in $(pgrep -P $m); do
    tr '\0' '\n' < /proc/$p/environ | grep -qx "OMPI_COMM_WORLD_RANK=$1" &&
      echo $p
  done
}
for i in $(seq 1200); do
  r0=$(rank_pid 0)
  [ -n "$r0" ] && [ "$(cut -d' ' -f3 /proc/$r0/stat)" = T ] && break
  sleep 0.1
done
r1=$(rank_pid 1)
echo "rank 0: $r0 (stopped in its save), rank 1: $r1"
kill -9 $r1
start=$(date +%s)
kill -CONT $r0
wait $m
echo "job exit $? after $(( $(date +%s) - start )) s")sh");
  RunResult killed = RunCommand(
      absl::StrCat("bash -c '", EscapeSingleQuotes(script), "'"), 200);
  ASSERT_THAT(killed.output, HasSubstr("job exit ")) << killed.output;
  EXPECT_THAT(killed.output, Not(HasSubstr("job exit 0 "))) << killed.output;
  // mpirun names the killed rank and ends rank 0, well within the
  // collective timeout (60 s).
  EXPECT_THAT(killed.output, HasSubstr("process rank 1 with PID"));
  EXPECT_THAT(killed.output, HasSubstr("signal 9"));
  const size_t after = killed.output.find(" after ");
  ASSERT_NE(after, std::string::npos);
  EXPECT_LT(std::atoi(killed.output.c_str() + after + 7), 60)
      << killed.output;
  EXPECT_EQ(Count(killed.output, "epoch 1: "), 0) << killed.output;

  // The checkpoint survives; one process takes the run over to its end.
  RunResult resumed = RunCommand(
      absl::StrCat(train_, flags, " --resume"), 150);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output,
              HasSubstr("the rank count changed from 2 to 1 (the "
                        "checkpoint's run trained on 2 processes, this one "
                        "on 1 process): the global batch stays "
                        "--batch_size=64 (so the learning rate and its "
                        "schedule still fit), now 64 examples per rank "
                        "instead of 32"));
  EXPECT_EQ(Count(resumed.output, "the rank count changed"), 1)
      << resumed.output;
  EXPECT_EQ(Count(resumed.output, "epoch 1: "), 1) << resumed.output;
  EXPECT_EQ(Count(resumed.output, "epoch 2: "), 1) << resumed.output;
  absl::StatusOr<SafetensorsFile> weights =
      LoadSafetensors(out + "/model.safetensors");
  EXPECT_TRUE(weights.ok()) << weights.status();
}

TEST_F(DistributedTrainingTest, FailingRankEndsTheJob) {
  // Rank 1 cannot read its data; rank 0 would otherwise wait for it in the
  // first collective until the watchdog's 300 s.
  RunResult r =
      RunCommand(absl::StrCat(Mpirun(), "-np 1 ", train_, Flags(tmp_ + "/good"),
                              " : ", "-np 1 ", train_, Flags(tmp_ + "/bad"),
                              " --data_dir=/nonexistent"),
                 120);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.exit_code, 124) << "timed out (hang):\n" << r.output;
  EXPECT_LT(r.seconds, 60) << r.output;
  EXPECT_THAT(r.output, HasSubstr("error: rank 1: "));
  EXPECT_THAT(r.output, HasSubstr("/nonexistent"));
}

}  // namespace
}  // namespace dive::train
