// The training loop end to end on fake data (train/testing/small_runs.h):
// its outputs, determinism, divergence, BatchNorm's batches and input sizes.
// Every run is a few hundred 28x28 images, so each test takes well under a
// second. Resuming is resume_test.cc's, damaged or edited checkpoint files
// checkpoint_files_test.cc's, a directory that already holds a run
// existing_run_test.cc's.

#include "train/training.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "datasets/testing/fake_data.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/bn_lenet/bn_lenet.h"
#include "models/lenet/lenet.h"
#include "models/mlp/mlp.h"
#include "models/softmax/softmax.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"
#include "train/evaluation.h"
#include "train/testing/small_runs.h"

namespace dive::train {
namespace {

using data::testing::FakeImages;
using ::dive::train::testing::BitIdentical;
using ::dive::train::testing::Contents;
using ::dive::train::testing::CsvEpochs;
using ::dive::train::testing::FreshDir;
using ::dive::train::testing::LoadTensors;
using ::dive::train::testing::SmallRun;
using ::dive::train::testing::TrainingTest;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace fs = std::filesystem;

TEST_F(TrainingTest, SoftmaxLearnsAndWritesCheckpointCsvAndPlot) {
  const std::string dir = FreshDir("outputs");
  absl::StatusOr<TrainSummary> s =
      Train(models::SoftmaxSpec(), SmallRun(dir), train_, test_);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->epochs.size(), 2u);
  EXPECT_EQ(s->epochs[0].epoch, 1);
  EXPECT_EQ(s->epochs[1].epoch, 2);
  EXPECT_LT(s->epochs[1].loss, s->epochs[0].loss);
  EXPECT_GT(s->epochs[1].test_acc, 0.8);  // chance is 0.1
  EXPECT_EQ(s->skipped_steps, 0);

  EXPECT_EQ(CsvEpochs(dir + "/metrics.csv"), (std::vector<int64_t>{1, 2}));
  auto model = models::SoftmaxSpec().make(28);
  ASSERT_TRUE(model.ok());
  int64_t epoch = -1;
  ASSERT_TRUE(LoadCheckpoint(dir + "/model.safetensors", **model, &epoch).ok());
  EXPECT_EQ(epoch, 2);
  // The checkpoint holds the trained weights: evaluating it gives the
  // summary's test accuracy.
  absl::StatusOr<EvalResult> evaluated = Evaluate(**model, test_, 28, 64);
  ASSERT_TRUE(evaluated.ok()) << evaluated.status();
  EXPECT_DOUBLE_EQ(evaluated->accuracy, s->epochs[1].test_acc);
  EXPECT_EQ(evaluated->confusion, s->epochs[1].confusion);
  if (std::system("command -v gnuplot > /dev/null 2>&1") == 0) {
    EXPECT_GT(fs::file_size(dir + "/metrics.png"), 0u);
  }
  // Nothing half-written is left behind.
  for (const auto& entry : fs::directory_iterator(dir)) {
    EXPECT_NE(entry.path().extension(), ".tmp") << entry.path();
  }
}

TEST_F(TrainingTest, SameSeedAndThreadsGiveBitIdenticalWeights) {
  for (const models::ModelSpec& spec :
       {models::SoftmaxSpec(), models::LeNetSpec()}) {
    TrainOptions o = SmallRun(FreshDir("a"));
    o.epochs = 1;
    o.train_limit = 256;  // 8 steps
    o.test_limit = 32;
    ASSERT_TRUE(Train(spec, o, train_, test_).ok()) << spec.name;
    const auto a = LoadTensors(o.out_dir + "/model.safetensors");
    o.out_dir = FreshDir("b");
    ASSERT_TRUE(Train(spec, o, train_, test_).ok()) << spec.name;
    const auto b = LoadTensors(o.out_dir + "/model.safetensors");
    o.out_dir = FreshDir("c");
    o.seed = 2;
    ASSERT_TRUE(Train(spec, o, train_, test_).ok()) << spec.name;
    const auto c = LoadTensors(o.out_dir + "/model.safetensors");
    ASSERT_FALSE(a.empty());
    EXPECT_TRUE(BitIdentical(a, b)) << spec.name << ": same seed differs";
    EXPECT_FALSE(BitIdentical(a, c)) << spec.name << ": seed has no effect";
  }
}

TEST_F(TrainingTest, DivergenceNamesTheStepAndTheLastGoodCheckpoint) {
  const std::string dir = FreshDir("diverge");
  TrainOptions o = SmallRun(dir);
  o.lr = 1e30f;
  absl::StatusOr<TrainSummary> s = Train(models::MlpSpec(), o, train_, test_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kAborted) << s.status();
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("training diverged: loss is"));
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("at epoch 1 step "));
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("last good checkpoint: none"));
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("--skip_nonfinite"));
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));

  // After a good epoch, the error points at its checkpoint, which is intact:
  // a step schedule multiplies the rate by 1e31 after epoch 1.
  o.lr = 0.1f;
  o.lr_schedule = LrScheduleKind::kStep;
  o.lr_step_epochs = 1;
  o.lr_gamma = 1e31f;
  o.overwrite = true;
  s = Train(models::MlpSpec(), o, train_, test_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kAborted) << s.status();
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("at epoch 2 step "));
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr(absl::StrCat("last good checkpoint: ", dir,
                                     "/model.safetensors (epoch 1)")));
  auto model = models::MlpSpec().make(28);
  int64_t epoch = -1;
  ASSERT_TRUE(LoadCheckpoint(dir + "/model.safetensors", **model, &epoch).ok());
  EXPECT_EQ(epoch, 1);
  EXPECT_EQ(CsvEpochs(dir + "/metrics.csv"), (std::vector<int64_t>{1}));
}

TEST_F(TrainingTest, SkipNonfiniteCountsSkippedStepsButFailsAnEmptyEpoch) {
  TrainOptions o = SmallRun(FreshDir("skip"));
  o.lr = 1e30f;
  o.skip_nonfinite = true;
  absl::StatusOr<TrainSummary> s = Train(models::MlpSpec(), o, train_, test_);
  // Epoch 1 trains a few steps before the logits overflow; from then on
  // every loss is NaN, so epoch 2 would train nothing: an error, not a
  // "loss 0.000" epoch.
  EXPECT_EQ(s.status().code(), absl::StatusCode::kAborted) << s.status();
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("training diverged: every step of epoch 2 (16 of 16) "
                        "had a non-finite loss and was skipped "
                        "(--skip_nonfinite), so nothing was trained; last good "
                        "checkpoint: " +
                        o.out_dir + "/model.safetensors (epoch 1)"));
  EXPECT_EQ(CsvEpochs(o.out_dir + "/metrics.csv"), (std::vector<int64_t>{1}));
  // Epoch 1 skipped some steps and trained others; its checkpoint loads.
  o.epochs = 1;
  o.overwrite = true;
  s = Train(models::MlpSpec(), o, train_, test_);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GT(s->skipped_steps, 0);
  EXPECT_LT(s->skipped_steps, 16);
  auto model = models::MlpSpec().make(28);
  EXPECT_TRUE(LoadCheckpoint(o.out_dir + "/model.safetensors", **model).ok());
}

TEST_F(TrainingTest, NonFiniteWeightsAreRefusedOnLoad) {
  const std::string dir = FreshDir("nonfinite");
  TrainOptions o = SmallRun(dir);
  o.epochs = 1;
  ASSERT_TRUE(Train(models::SoftmaxSpec(), o, train_, test_).ok());
  const std::string path = dir + "/model.safetensors";
  absl::StatusOr<SafetensorsFile> f = LoadSafetensors(path);
  ASSERT_TRUE(f.ok());
  const std::string csv_before = Contents(dir + "/metrics.csv");
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    SafetensorsFile damaged = *f;
    Tensor w = damaged.tensors.at("1.weight").Clone();
    w.data<float>()[5] = bad;
    damaged.tensors["1.weight"] = w;
    ASSERT_TRUE(SaveSafetensors(path, damaged).ok());  // a valid CRC
    auto model = models::SoftmaxSpec().make(28);
    const absl::Status st = LoadCheckpoint(path, **model);
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << bad;
    EXPECT_THAT(std::string(st.message()),
                HasSubstr(absl::StrCat("checkpoint ", path,
                                       ": tensor "
                                       "'1.weight' holds ",
                                       bad,
                                       " at element 5 of 7840; these weights "
                                       "come from a diverged run")));
    // --resume says so too, not "lower --lr", and changes nothing.
    o.resume = true;
    o.epochs = 2;
    absl::StatusOr<TrainSummary> s =
        Train(models::SoftmaxSpec(), o, train_, test_);
    EXPECT_EQ(s.status(), st);
    EXPECT_EQ(Contents(dir + "/metrics.csv"), csv_before);
  }
}

TEST_F(TrainingTest, BatchNormNeverTrainsOnOneExample) {
  TrainOptions o = SmallRun("");
  o.epochs = 1;
  o.train_limit = 65;  // 2 batches of 32 and one of 1: was a CHECK failure
  absl::StatusOr<TrainSummary> s =
      Train(models::BnLeNetSpec(), o, train_, test_);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GT(s->epochs[0].loss, 0);

  o.batch_size = 1;
  s = Train(models::BnLeNetSpec(), o, train_, test_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.status().message(),
            "--batch_size=1 gives batches of 1 example: bn_lenet has "
            "BatchNorm, which needs at least 2 examples per batch to train");
  // Models without BatchNorm train on batches of 1 as before.
  o.train_limit = 4;
  EXPECT_TRUE(Train(models::LeNetSpec(), o, train_, test_).ok());
}

TEST_F(TrainingTest, UnsupportedInputSizeMentionsResize) {
  TrainOptions o = SmallRun("");
  o.input_size = 5;
  absl::StatusOr<TrainSummary> s = Train(models::LeNetSpec(), o, train_, test_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), StartsWith("--resize=5: "));
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("LeNet"));
}

TEST_F(TrainingTest, OddImagesAreResizedOrRejectedNotACrash) {
  TrainOptions o = SmallRun("");
  o.epochs = 1;
  // 28 x 30 images used to reach Linear's shape CHECK: the loader resized
  // only when the height differed from --resize.
  const data::InMemoryDataset wide = FakeImages(64, 3, 28, 30);
  absl::StatusOr<TrainSummary> s = Train(models::SoftmaxSpec(), o, wide, wide);
  EXPECT_TRUE(s.ok()) << s.status();

  const data::InMemoryDataset rgb(std::vector<uint8_t>(4 * 3 * 28 * 28, 7),
                                  {0, 1, 2, 3}, 3, 28, 28);
  s = Train(models::SoftmaxSpec(), o, rgb, test_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("3 channels"));
}

TEST_F(TrainingTest, ALabelBeyondTheModelsOutputsIsAnError) {
  // Two 28 x 28 images, the second labelled 12: softmax regression has 10
  // outputs.
  const data::InMemoryDataset odd(std::vector<uint8_t>(2 * 28 * 28, 0), {3, 12},
                                  1, 28, 28);
  const absl::Status s =
      Train(models::SoftmaxSpec(), SmallRun(""), odd, test_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("the training data does not fit softmax: training "
                        "example 1 has label 12 but the model has 10 outputs "
                        "(labels 0..9)"));
}

TEST_F(TrainingTest, HugeBatchSizeIsOneBatch) {
  // (n + b - 1) / b used to overflow and give no batches at all.
  TrainOptions o = SmallRun("");
  o.epochs = 1;
  o.batch_size = std::numeric_limits<int64_t>::max();
  o.train_limit = 64;
  absl::StatusOr<TrainSummary> s =
      Train(models::SoftmaxSpec(), o, train_, test_);
  ASSERT_TRUE(s.ok()) << s.status();
  // 64 examples seen in one step (before: none, and a loss of 0).
  EXPECT_GT(s->epochs[0].examples_per_sec, 0);
  EXPECT_GT(s->epochs[0].loss, 0);
}

}  // namespace
}  // namespace dive::train
