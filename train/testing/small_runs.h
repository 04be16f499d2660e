// File: train/testing/small_runs.h
// -----------------------------------------------------------------------------
//
// What the tests of the training loop (train/training_test.cc,
// resume_test.cc, checkpoint_files_test.cc, existing_run_test.cc) share:
// small runs on fake data (datasets/testing/fake_data.h: a few hundred
// 28x28 images, so each run takes well under a second), a stop at a chosen
// step, and reading, comparing and editing the files a run leaves.
//
// Example:
//
//   using ::dive::train::testing::TrainingTest;
//
//   TEST_F(TrainingTest, Trains) {
//     const std::string dir = FreshDir("trains");
//     ASSERT_TRUE(Train(models::SoftmaxSpec(), SmallRun(dir), train_, test_)
//                     .ok());
//     EXPECT_EQ(CsvEpochs(dir + "/metrics.csv"),
//               (std::vector<int64_t>{1, 2}));
//   }

#ifndef TRAIN_TESTING_SMALL_RUNS_H_
#define TRAIN_TESTING_SMALL_RUNS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "datasets/dataset.h"
#include "datasets/testing/fake_data.h"
#include "gtest/gtest.h"
#include "tensor/tensor.h"
#include "train/observer.h"
#include "train/options.h"
#include "train/train_state.h"

namespace dive::train::testing {

// The tests' training and test sets: 512 and 128 fake images.
class TrainingTest : public ::testing::Test {
 protected:
  const data::InMemoryDataset train_ =
      data::testing::FakeImages(512, /*seed=*/1);
  const data::InMemoryDataset test_ =
      data::testing::FakeImages(128, /*seed=*/2);
};

// A fresh, empty directory under the test's temporary directory.
std::string FreshDir(const std::string& name);

// Two epochs of batches of 32 on 2 threads, seed 1, lr 0.1, into `out_dir`
// ("": no files), without progress lines.
TrainOptions SmallRun(const std::string& out_dir);

// SmallRun for 3 epochs with every choice that carries state across steps:
// momentum or Adam moments, augmentation, warm-up, a cosine schedule,
// clipping (dropout or BatchNorm come with the model).
TrainOptions Everything(const std::string& dir, OptimizerKind optimizer);

// Calls RequestStop(SIGINT) after global step `at`, as Ctrl-C would.
class StopAt : public TrainObserver {
 public:
  explicit StopAt(int64_t at) : at_(at) {}
  absl::Status OnStep(const TrainState& state, const StepInfo&) override;

 private:
  const int64_t at_;
};

// The file at `path` whole ("" when it cannot be read).
std::string Contents(const std::string& path);

// The lines of the file at `path`.
std::vector<std::string> Lines(const std::string& path);

// The epoch column of a metrics.csv, after checking its header and columns
// (6, each a finite number) on every line.
std::vector<int64_t> CsvEpochs(const std::string& path);

// Every file of `dir` (but its lock) and its bytes.
std::map<std::string, std::string> Snapshot(const std::string& dir);

// The tensors of the safetensors file at `path` (a test failure and none
// when it does not load).
std::map<std::string, Tensor> LoadTensors(const std::string& path);

// True when both state dicts have the same keys and bit-identical values.
bool BitIdentical(const std::map<std::string, Tensor>& a,
                  const std::map<std::string, Tensor>& b);

// Rewrites the metadata `key` of the checkpoint at `path` (CRC intact: it
// covers the data).
void SetMetadata(const std::string& path, const std::string& key,
                 const std::string& value);

// Removes the metadata `key` of the checkpoint at `path` (checksums
// rewritten, as a tool that edits safetensors files would).
void EraseMetadata(const std::string& path, const std::string& key);

}  // namespace dive::train::testing

#endif  // TRAIN_TESTING_SMALL_RUNS_H_
