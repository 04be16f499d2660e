// A run directory that already holds a run (fake data,
// train/testing/small_runs.h): a new run is refused without --overwrite and
// changes nothing, a second run is locked out, a resume must keep the run's
// settings, and a save cut short after its commit is refused intact
// without --resume and completed by it.

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/mlp/mlp.h"
#include "models/softmax/softmax.h"
#include "train/testing/small_runs.h"
#include "train/training.h"

namespace dive::train {
namespace {

using ::dive::train::testing::BitIdentical;
using ::dive::train::testing::Contents;
using ::dive::train::testing::CsvEpochs;
using ::dive::train::testing::Everything;
using ::dive::train::testing::FreshDir;
using ::dive::train::testing::LoadTensors;
using ::dive::train::testing::SmallRun;
using ::dive::train::testing::Snapshot;
using ::dive::train::testing::TrainingTest;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

TEST_F(TrainingTest, NewRunIntoAnExistingRunNeedsOverwrite) {
  const std::string dir = FreshDir("existing");
  TrainOptions o = SmallRun(dir);
  o.epochs = 1;
  ASSERT_TRUE(Train(models::SoftmaxSpec(), o, train_, test_).ok());
  const std::string ckpt = Contents(dir + "/model.safetensors");
  o.seed = 2;
  absl::StatusOr<TrainSummary> s =
      Train(models::SoftmaxSpec(), o, train_, test_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr(absl::StrCat(
                  "--out=", dir,
                  " already holds a run (model.safetensors, "
                  "train_state.safetensors, metrics.csv; a checkpoint after "
                  "epoch 1); pass --resume to continue it or --overwrite to "
                  "replace it")));
  EXPECT_EQ(Contents(dir + "/model.safetensors"), ckpt);
  // Only the CSV left (the checkpoint deleted): still a run.
  fs::remove(dir + "/model.safetensors");
  fs::remove(dir + "/train_state.safetensors");
  s = Train(models::SoftmaxSpec(), o, train_, test_);
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("already holds a run (metrics.csv)"));

  o.resume = true;
  o.overwrite = true;
  s = Train(models::SoftmaxSpec(), o, train_, test_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("--resume and --overwrite contradict each other"));

  o.resume = false;
  o.epochs = 2;
  s = Train(models::SoftmaxSpec(), o, train_, test_);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(CsvEpochs(dir + "/metrics.csv"), (std::vector<int64_t>{1, 2}));
  int64_t epoch = 0;
  auto model = models::SoftmaxSpec().make(28);
  ASSERT_TRUE(LoadCheckpoint(dir + "/model.safetensors", **model, &epoch).ok());
  EXPECT_EQ(epoch, 2);
}

TEST_F(TrainingTest, SecondRunOnTheSameDirectoryIsRefused) {
  const std::string dir = FreshDir("locked");
  // Another run holds the directory's lock (flock: per open file, so this
  // process's own second open conflicts as another process's would).
  const int fd = open((dir + "/.lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  ASSERT_EQ(write(fd, "4242\n", 5), 5);
  absl::StatusOr<TrainSummary> s =
      Train(models::SoftmaxSpec(), SmallRun(dir), train_, test_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr(absl::StrCat("--out=", dir,
                                     ": another run (pid 4242) is using this "
                                     "directory")));
  EXPECT_FALSE(fs::exists(dir + "/metrics.csv"));
  close(fd);  // the other run ends
  s = Train(models::SoftmaxSpec(), SmallRun(dir), train_, test_);
  EXPECT_TRUE(s.ok()) << s.status();
  // The lock is released when Train returns and records the last holder.
  EXPECT_EQ(Contents(dir + "/.lock"), absl::StrCat(getpid(), "\n"));
  const int again = open((dir + "/.lock").c_str(), O_RDWR);
  EXPECT_EQ(flock(again, LOCK_EX | LOCK_NB), 0);
  close(again);
}

TEST_F(TrainingTest, ResumeRefusesAChangedSetting) {
  const std::string dir = FreshDir("settings");
  TrainOptions o = Everything(dir, OptimizerKind::kSgd);
  o.epochs = 1;
  ASSERT_TRUE(Train(models::MlpSpec(), o, train_, test_).ok());
  const std::string before = Contents(dir + "/model.safetensors");
  o.resume = true;
  const struct {
    std::function<void(TrainOptions&)> change;
    const char* message;
  } cases[] = {
      {[](TrainOptions& x) {
         x.optimizer = OptimizerKind::kAdam;
         x.momentum = 0;
       },
       "--momentum=0 (it was trained with --momentum=0.899999976), "
       "--optimizer=adam (it was trained with --optimizer=sgd): the run in"},
      {[](TrainOptions& x) { x.lr = 0.5f; },
       "--lr=0.5 (it was trained with --lr=0.0500000007)"},
      {[](TrainOptions& x) { x.augment_crop = false; },
       "--augment=flip (it was trained with --augment=flip,crop)"},
      {[](TrainOptions& x) { x.batch_size = 16; }, "--batch_size=16"},
      {[](TrainOptions& x) { x.epochs = 4; },  // the cosine's length
       "--epochs=4 (it was trained with --epochs=1)"},
  };
  for (const auto& c : cases) {
    TrainOptions changed = o;
    c.change(changed);
    absl::StatusOr<TrainSummary> s =
        Train(models::MlpSpec(), changed, train_, test_);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument)
        << s.status();
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.message));
    EXPECT_THAT(std::string(s.status().message()),
                HasSubstr("resume with the same values"));
  }
  EXPECT_EQ(Contents(dir + "/model.safetensors"), before);
}

TEST_F(TrainingTest, SaveCutShortAfterItsCommitIsRefusedIntactAndResumed) {
  // train/kill_during_save_test.cc kills a trainer there for real; this
  // lays out the same directory by hand.
  const std::string whole = FreshDir("whole"), dir = FreshDir("pair");
  TrainOptions o = SmallRun(whole);
  o.momentum = 0.9f;
  ASSERT_TRUE(Train(models::MlpSpec(), o, train_, test_).ok());
  o.out_dir = dir;
  o.epochs = 1;
  ASSERT_TRUE(Train(models::MlpSpec(), o, train_, test_).ok());
  const std::string epoch1 = Contents(dir + "/model.safetensors");
  o.epochs = 2;
  o.resume = true;
  ASSERT_TRUE(Train(models::MlpSpec(), o, train_, test_).ok());
  // As if killed after epoch 2's state was committed but before its
  // weights were published: they are still the pending file.
  fs::rename(dir + "/model.safetensors", dir + "/model.safetensors.pending");
  std::ofstream(dir + "/model.safetensors", std::ios::binary) << epoch1;
  const std::map<std::string, std::string> before = Snapshot(dir);

  // Without --resume: refused, saying what it found, and nothing changes.
  o.resume = false;
  absl::StatusOr<TrainSummary> s = Train(models::MlpSpec(), o, train_, test_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      std::string(s.status().message()),
      HasSubstr(absl::StrCat(
          "--out=", dir,
          " already holds a run (model.safetensors, train_state.safetensors, "
          "metrics.csv; a checkpoint after epoch 2, whose weights a save cut "
          "short left in model.safetensors.pending (--resume completes that "
          "save)); pass --resume to continue it or --overwrite to replace "
          "it")));
  EXPECT_EQ(Snapshot(dir), before);

  // --resume completes the save, and the run is the uninterrupted one.
  o.resume = true;
  s = Train(models::MlpSpec(), o, train_, test_);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->epochs.empty());  // epoch 2 was already done
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors.pending"));
  EXPECT_TRUE(BitIdentical(LoadTensors(whole + "/model.safetensors"),
                           LoadTensors(dir + "/model.safetensors")));

  // Weights replaced by hand: the pair does not match, and nothing changes.
  std::ofstream(dir + "/model.safetensors", std::ios::binary) << epoch1;
  o.epochs = 3;
  s = Train(models::MlpSpec(), o, train_, test_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("train_state.safetensors belongs with weights of CRC"));
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("/model.safetensors.pending is absent"));
  EXPECT_EQ(Contents(dir + "/model.safetensors"), epoch1);
}

TEST_F(TrainingTest, FirstSaveCutShortAfterItsCommitResumes) {
  // Killed in the first save, after its commit: no model.safetensors yet.
  const std::string dir = FreshDir("first_save");
  TrainOptions o = SmallRun(dir);
  o.epochs = 1;
  ASSERT_TRUE(Train(models::SoftmaxSpec(), o, train_, test_).ok());
  fs::rename(dir + "/model.safetensors", dir + "/model.safetensors.pending");
  fs::remove(dir + "/metrics.csv");
  const std::map<std::string, std::string> before = Snapshot(dir);
  o.epochs = 2;
  absl::StatusOr<TrainSummary> s =
      Train(models::SoftmaxSpec(), o, train_, test_);
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("already holds a run (train_state.safetensors; a "
                        "checkpoint after epoch 1, whose weights a save cut "
                        "short left in model.safetensors.pending"));
  EXPECT_EQ(Snapshot(dir), before);
  o.resume = true;
  s = Train(models::SoftmaxSpec(), o, train_, test_);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->epochs.size(), 1u);
  EXPECT_EQ(s->epochs[0].epoch, 2);
}

}  // namespace
}  // namespace dive::train
