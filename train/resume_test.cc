// Resuming a run of the training loop (fake data, train/testing/small_runs.h):
// at the next epoch, or at the step where a stop (SIGINT) or a step
// checkpoint left it, bit-identical to the uninterrupted run; the CSV
// repaired to match the checkpoint; on another number of processes (a line
// saying what that changes) and fewer batches per epoch, other threads or
// kernels (a warning); from weights without a training state. Refusals of a
// resume are existing_run_test.cc's and checkpoint_files_test.cc's.

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "datasets/testing/fake_data.h"
#include "distributed/process_group.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/bn_lenet/bn_lenet.h"
#include "models/lenet/lenet.h"
#include "models/mlp/mlp.h"
#include "models/softmax/softmax.h"
#include "tensor/cpu.h"
#include "tensor/testing/logged_warnings.h"
#include "train/stop.h"
#include "train/testing/small_runs.h"
#include "train/train_state.h"
#include "train/training.h"

namespace dive::train {
namespace {

using data::testing::FakeImages;
using ::dive::train::testing::BitIdentical;
using ::dive::train::testing::CsvEpochs;
using ::dive::train::testing::Everything;
using ::dive::train::testing::FreshDir;
using ::dive::train::testing::Lines;
using ::dive::train::testing::LoadTensors;
using ::dive::train::testing::SmallRun;
using ::dive::train::testing::StopAt;
using ::dive::train::testing::TrainingTest;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

namespace fs = std::filesystem;

// The CSV without its seconds and examples/sec columns.
std::vector<std::string> CsvValues(const std::string& path) {
  std::vector<std::string> rows;
  for (const std::string& line : Lines(path)) {
    const std::vector<std::string> f = absl::StrSplit(line, ',');
    rows.push_back(absl::StrCat(f[0], ",", f[1], ",", f[2], ",", f[3]));
  }
  return rows;
}

// Two ranks in one process: rank 0 of a group of 2 whose other rank holds
// the same numbers (sums double, broadcasts from rank 0 change nothing).
// Enough to train with the batches and drop_last of 2 processes.
class MirroredPair : public distributed::ProcessGroup {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string backend() const override { return "mirrored"; }
  absl::Status AllReduceSum(float* data, size_t n) override {
    for (size_t i = 0; i < n; ++i) data[i] *= 2;
    return absl::OkStatus();
  }
  absl::Status AllReduceSum(double* data, size_t n) override {
    for (size_t i = 0; i < n; ++i) data[i] *= 2;
    return absl::OkStatus();
  }
  absl::Status BroadcastBytes(void*, size_t, int) override {
    return absl::OkStatus();
  }
  absl::Status Barrier() override { return absl::OkStatus(); }
  [[noreturn]] void Abort(int exit_code) override { std::_Exit(exit_code); }
};

TEST_F(TrainingTest, ResumeContinuesAtTheNextEpoch) {
  const std::string dir = FreshDir("resume");
  TrainOptions o = SmallRun(dir);
  ASSERT_TRUE(Train(models::SoftmaxSpec(), o, train_, test_).ok());
  o.resume = true;
  o.epochs = 3;
  absl::StatusOr<TrainSummary> s =
      Train(models::SoftmaxSpec(), o, train_, test_);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->epochs.size(), 1u);
  EXPECT_EQ(s->epochs[0].epoch, 3);
  EXPECT_EQ(CsvEpochs(dir + "/metrics.csv"), (std::vector<int64_t>{1, 2, 3}));
  auto model = models::SoftmaxSpec().make(28);
  int64_t epoch = -1;
  ASSERT_TRUE(LoadCheckpoint(dir + "/model.safetensors", **model, &epoch).ok());
  EXPECT_EQ(epoch, 3);

  // Resuming a finished run trains nothing and changes nothing.
  s = Train(models::SoftmaxSpec(), o, train_, test_);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->epochs.empty());
  EXPECT_EQ(CsvEpochs(dir + "/metrics.csv"), (std::vector<int64_t>{1, 2, 3}));
}

TEST_F(TrainingTest, ResumeEqualsAnUninterruptedRun) {
  // Each epoch's shuffle depends only on (seed, epoch): 2 + 1 epochs give
  // the same weights as 3 (StoppedAtAnyStep... covers stops inside epochs
  // and the optimizer's state).
  const std::string whole = FreshDir("whole"), split = FreshDir("split");
  TrainOptions o = SmallRun(whole);
  o.epochs = 3;
  ASSERT_TRUE(Train(models::SoftmaxSpec(), o, train_, test_).ok());
  o.out_dir = split;
  o.epochs = 2;
  ASSERT_TRUE(Train(models::SoftmaxSpec(), o, train_, test_).ok());
  o.resume = true;
  o.epochs = 3;
  ASSERT_TRUE(Train(models::SoftmaxSpec(), o, train_, test_).ok());
  EXPECT_TRUE(BitIdentical(LoadTensors(whole + "/model.safetensors"),
                           LoadTensors(split + "/model.safetensors")));
}

TEST_F(TrainingTest, ResumeRepairsTheCsvToMatchTheCheckpoint) {
  const std::string dir = FreshDir("repair");
  TrainOptions o = SmallRun(dir);
  ASSERT_TRUE(Train(models::SoftmaxSpec(), o, train_, test_).ok());
  {
    // A run killed after appending epoch 3's row but before saving its
    // checkpoint, then mid-way through another row.
    std::ofstream csv(dir + "/metrics.csv", std::ios::app);
    csv << "3,9.9,0.1,0.1,1.0,10.0\n4,0.5";
  }
  o.resume = true;
  o.epochs = 3;
  absl::StatusOr<TrainSummary> s =
      Train(models::SoftmaxSpec(), o, train_, test_);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(CsvEpochs(dir + "/metrics.csv"), (std::vector<int64_t>{1, 2, 3}));
  const std::vector<std::string> lines = Lines(dir + "/metrics.csv");
  // The rerun's row, not the planted one (whose loss is 9.9; a substring
  // test would also match a rerun timed at, say, 16609.9 examples/s).
  EXPECT_THAT(lines.back(), Not(StartsWith("3,9.9,")));

  // A deleted CSV is started again with its header.
  fs::remove(dir + "/metrics.csv");
  o.epochs = 4;
  ASSERT_TRUE(Train(models::SoftmaxSpec(), o, train_, test_).ok());
  EXPECT_EQ(CsvEpochs(dir + "/metrics.csv"), (std::vector<int64_t>{4}));
}

TEST_F(TrainingTest, StoppedAtAnyStepAndResumedIsTheUninterruptedRun) {
  struct Case {
    models::ModelSpec spec;
    OptimizerKind optimizer;
  };
  // 512 images in batches of 32: 16 steps per epoch. Stops after the first
  // steps, inside epochs 1 and 2, at an epoch's last step, and twice.
  for (const Case& c : {Case{models::MlpDropoutSpec(), OptimizerKind::kAdam},
                        Case{models::BnLeNetSpec(), OptimizerKind::kSgd}}) {
    const std::string whole = FreshDir("whole");
    TrainOptions o = Everything(whole, c.optimizer);
    ASSERT_TRUE(Train(c.spec, o, train_, test_).ok());
    for (const std::vector<int64_t>& stops :
         std::vector<std::vector<int64_t>>{{1}, {7}, {20}, {31}, {4, 40}}) {
      const std::string split = FreshDir("split");
      o.out_dir = split;
      o.resume = false;
      for (int64_t at : stops) {
        StopAt stop(at);
        o.observers = {&stop};
        absl::StatusOr<TrainSummary> s = Train(c.spec, o, train_, test_);
        ASSERT_EQ(s.status().code(), absl::StatusCode::kCancelled)
            << s.status();
        // The request is seen with the next step's loss (one collective
        // for both), so the run stops after step at + 1.
        absl::StatusOr<SavedRun> run = ReadRun(split);
        ASSERT_TRUE(run.ok()) << run.status();
        ASSERT_TRUE(run->state.has_value());
        const TrainPosition& p = run->state->position;
        EXPECT_EQ(p.global_step, at + 1);
        EXPECT_THAT(std::string(s.status().message()),
                    HasSubstr(absl::StrCat(
                        "stopped by Interrupt at epoch ", p.epoch + 1, " step ",
                        p.step, " of 16; the run is saved in ", split,
                        ": continue it with --resume")));
        EXPECT_EQ(StoppedBySignal(), SIGINT);
        o.resume = true;
      }
      o.observers.clear();
      ASSERT_TRUE(Train(c.spec, o, train_, test_).ok());
      const std::string what =
          absl::StrCat(c.spec.name, " stopped at ", absl::StrJoin(stops, ","));
      EXPECT_TRUE(BitIdentical(LoadTensors(whole + "/model.safetensors"),
                               LoadTensors(split + "/model.safetensors")))
          << what;
      EXPECT_TRUE(BitIdentical(LoadTensors(whole + "/train_state.safetensors"),
                               LoadTensors(split + "/train_state.safetensors")))
          << what;
      EXPECT_EQ(CsvValues(whole + "/metrics.csv"),
                CsvValues(split + "/metrics.csv"))
          << what;
    }
  }
}

TEST_F(TrainingTest, CheckpointEveryNStepsRecordsThePosition) {
  const std::string dir = FreshDir("every");
  TrainOptions o = Everything(dir, OptimizerKind::kSgd);
  o.epochs = 2;
  o.checkpoint_every = 3;
  StopAt stop(20);  // stops after step 21, with checkpoints at 3, 6, ...
  o.observers = {&stop};
  ASSERT_EQ(Train(models::MlpDropoutSpec(), o, train_, test_).status().code(),
            absl::StatusCode::kCancelled);
  absl::StatusOr<SavedRun> run = ReadRun(dir);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_TRUE(run->state.has_value());
  EXPECT_EQ(run->state->position.epoch, 1);
  EXPECT_EQ(run->state->position.step, 5);
  EXPECT_EQ(run->state->position.global_step, 21);
  EXPECT_EQ(run->weights.epoch, 1);
  EXPECT_EQ(run->state->settings.at("optimizer"), "sgd");
  EXPECT_EQ(run->state->settings.at("augment"), "flip,crop");
  EXPECT_GT(run->state->totals.seen, 0);
  EXPECT_EQ(CsvEpochs(dir + "/metrics.csv"), (std::vector<int64_t>{1}));
}

TEST_F(TrainingTest, ResumeWithFewerBatchesPerEpochEndsTheEpochThere) {
  // 520 images in batches of 32: one process takes 17 batches per epoch
  // (the last of 8 images), two take 16 (they drop it). A run stopped after
  // epoch 1's 17th batch, resumed on two processes, used to abort ("first
  // batch 17 not in [0, 16]").
  const data::InMemoryDataset train = FakeImages(520, /*seed=*/1);
  const std::string dir = FreshDir("ranks");
  TrainOptions o = SmallRun(dir);
  o.epochs = 2;
  StopAt stop(16);  // stops after step 17, the epoch's last
  o.observers = {&stop};
  ASSERT_EQ(Train(models::SoftmaxSpec(), o, train, test_).status().code(),
            absl::StatusCode::kCancelled);
  absl::StatusOr<SavedRun> run = ReadRun(dir);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state->position.step, 17);
  EXPECT_EQ(run->state->environment.steps_per_epoch, 17);

  MirroredPair two;
  o.observers.clear();
  o.process_group = &two;
  o.resume = true;
  LoggedWarnings warnings;
  absl::StatusOr<TrainSummary> s =
      Train(models::SoftmaxSpec(), o, train, test_);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->epochs.size(), 2u);  // epoch 1 ends at once, epoch 2 trains
  EXPECT_EQ(warnings
                .With("epoch 1 already took 17 batches, more than the 16 "
                      "it has over 2 processes: it ends there, and "
                      "training goes on with epoch 2")
                .size(),
            1u);
  // One line says what the rank count changes; the batches per epoch too.
  const std::vector<std::string> changed =
      warnings.With("the rank count changed");
  ASSERT_EQ(changed.size(), 1u) << absl::StrJoin(warnings.lines, "\n");
  EXPECT_THAT(changed[0],
              HasSubstr("the rank count changed from 1 to 2 (the checkpoint's "
                        "run trained on 1 process, this one on 2 processes): "
                        "the global batch stays --batch_size=32"));
  EXPECT_THAT(changed[0], HasSubstr("now 16 examples per rank instead of 32"));
  EXPECT_THAT(changed[0],
              HasSubstr("the data order each rank sees and the batch split "
                        "are no longer the uninterrupted run's"));
  EXPECT_THAT(changed[0], HasSubstr("; each epoch now has 16 batches, not 17"));
  // Nothing else changed: no second line about the processes.
  EXPECT_TRUE(warnings.With("resuming with").empty())
      << absl::StrJoin(warnings.lines, "\n");
  EXPECT_EQ(CsvEpochs(dir + "/metrics.csv"), (std::vector<int64_t>{1, 2}));
  run = ReadRun(dir);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state->position.epoch, 2);
  EXPECT_EQ(run->state->position.global_step, 17 + 16);
  EXPECT_EQ(run->state->environment.steps_per_epoch, 16);

  // And back on one process: epochs of 17 and 16 batches are this run's.
  o.process_group = nullptr;
  o.epochs = 3;
  LoggedWarnings back;
  s = Train(models::SoftmaxSpec(), o, train, test_);
  ASSERT_TRUE(s.ok()) << s.status();
  const std::vector<std::string> back_to_one =
      back.With("the rank count changed from 2 to 1");
  ASSERT_EQ(back_to_one.size(), 1u) << absl::StrJoin(back.lines, "\n");
  EXPECT_THAT(back_to_one[0],
              HasSubstr("now 32 examples per rank instead of 16"));
  EXPECT_THAT(back_to_one[0],
              HasSubstr("each epoch now has 17 batches, not 16"));
  EXPECT_EQ(CsvEpochs(dir + "/metrics.csv"), (std::vector<int64_t>{1, 2, 3}));
}

TEST(RankCountChangeTest, SaysWhatAnotherNumberOfRanksChanges) {
  const RunEnvironment two{/*steps_per_epoch=*/15, /*processes=*/2,
                           /*threads=*/1, "avx2"};
  EXPECT_EQ(RankCountChange(two, two, 64, /*sync_batch_norm=*/false), "");
  RunEnvironment four = two;
  four.processes = 4;
  four.threads = 3;  // not this line's business
  EXPECT_EQ(
      RankCountChange(two, four, 64, /*sync_batch_norm=*/false),
      "the rank count changed from 2 to 4 (the checkpoint's run trained on 2 "
      "processes, this one on 4 processes): the global batch stays "
      "--batch_size=64 (so the learning rate and its schedule still fit), "
      "now 16 examples per rank instead of 32; each step still takes the same "
      "examples of the epoch's shuffled order, but split over the ranks "
      "otherwise, so the data order each rank sees and the batch split are no "
      "longer the uninterrupted run's (nor are BatchNorm's per-rank "
      "statistics; dropout masks and the order of the gradient sums differ "
      "too): the run goes on, but its weights will not be bit-identical to "
      "those of an uninterrupted run");
  // SyncBatchNorm takes the statistics over the global batch, as before.
  EXPECT_THAT(RankCountChange(two, four, 64, /*sync_batch_norm=*/true),
              Not(HasSubstr("BatchNorm")));
  // One process takes the epoch's last partial batch.
  RunEnvironment one = two;
  one.processes = 1;
  one.steps_per_epoch = 16;
  EXPECT_THAT(RankCountChange(two, one, 64, /*sync_batch_norm=*/false),
              HasSubstr("from 2 to 1 (the checkpoint's run trained on 2 "
                        "processes, this one on 1 process)"));
  EXPECT_THAT(RankCountChange(two, one, 64, /*sync_batch_norm=*/false),
              HasSubstr("uninterrupted run; each epoch now has 16 batches, "
                        "not 15 (one process takes its last partial batch, "
                        "several drop it)"));
  // The other differences are ExactnessWarning's, which no longer names
  // the processes.
  EXPECT_EQ(ExactnessWarning(two, four).find("processes"), std::string::npos);
  EXPECT_THAT(ExactnessWarning(two, four),
              HasSubstr("resuming with threads 3 (it was trained with 1)"));
}

TEST_F(TrainingTest, ResumeOnOtherThreadsOrKernelsWarnsOnce) {
  const std::string dir = FreshDir("machine");
  TrainOptions o = SmallRun(dir);
  o.epochs = 1;
  o.threads = 2;
  ASSERT_TRUE(Train(models::LeNetSpec(), o, train_, test_).ok());
  const std::string kernels(IsaName(ActiveIsa()));
  absl::StatusOr<SavedRun> run = ReadRun(dir);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state->environment.threads, 2);
  EXPECT_EQ(run->state->environment.kernels, kernels);
  EXPECT_EQ(run->state->environment.processes, 1);

  o.resume = true;
  o.epochs = 2;
  {
    LoggedWarnings warnings;  // the same machine: not a word
    ASSERT_TRUE(Train(models::LeNetSpec(), o, train_, test_).ok());
    EXPECT_TRUE(warnings.With("bit-identical").empty());
  }
  o.threads = 1;
  o.epochs = 3;
  const Isa before = ActiveIsa();
  const bool other_kernels = before != Isa::kGeneric;
  if (other_kernels) {
    ASSERT_TRUE(SetActiveIsa(Isa::kGeneric).ok());
  }
  LoggedWarnings warnings;
  absl::StatusOr<TrainSummary> s = Train(models::LeNetSpec(), o, train_, test_);
  ASSERT_TRUE(SetActiveIsa(before).ok());
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->epochs.size(), 1u);
  const std::vector<std::string> lines = warnings.With("bit-identical");
  ASSERT_EQ(lines.size(), 1u) << absl::StrJoin(warnings.lines, "\n");
  EXPECT_THAT(lines[0], HasSubstr("resuming with threads 1 (it was trained "
                                  "with 2)"));
  if (other_kernels) {
    EXPECT_THAT(lines[0],
                HasSubstr(absl::StrCat(
                    ", kernels generic (it was trained with ", kernels, ")")));
  }
  EXPECT_THAT(lines[0], HasSubstr(": the run goes on, but its weights will "
                                  "not be bit-identical to those of an "
                                  "uninterrupted run"));
  // The new checkpoint records what it now ran on.
  run = ReadRun(dir);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state->environment.threads, 1);
}

TEST_F(TrainingTest, WeightsWithoutATrainStateResumeWithAWarning) {
  // Runs from before train_state.safetensors, and weights from PyTorch.
  const std::string dir = FreshDir("legacy");
  TrainOptions o = SmallRun(dir);
  o.epochs = 1;
  ASSERT_TRUE(Train(models::SoftmaxSpec(), o, train_, test_).ok());
  fs::remove(dir + "/train_state.safetensors");
  o.epochs = 2;
  o.resume = true;
  absl::StatusOr<TrainSummary> s =
      Train(models::SoftmaxSpec(), o, train_, test_);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->epochs.size(), 1u);
  EXPECT_EQ(s->epochs[0].epoch, 2);
  EXPECT_TRUE(fs::exists(dir + "/train_state.safetensors"));
}

}  // namespace
}  // namespace dive::train
