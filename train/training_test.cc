// The training loop end to end on fake data (datasets/testing/fake_data.h):
// outputs, resuming, determinism, option checks, divergence and checkpoint
// errors. Every run is a few hundred 28x28 images, so each test takes well
// under a second.

#include "train/training.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
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
#include "tensor/safetensors.h"
#include "tensor/testing/logged_warnings.h"
#include "train/evaluation.h"
#include "train/stop.h"

namespace dive::train {
namespace {

using data::testing::FakeImages;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

namespace fs = std::filesystem;

constexpr char kHeader[] =
    "epoch,loss,train_acc,test_acc,seconds,examples_per_sec";

// A fresh, empty directory under the test's temporary directory.
std::string FreshDir(const std::string& name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/", name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The epoch column of a metrics.csv, after checking its header and columns.
std::vector<int64_t> CsvEpochs(const std::string& path) {
  const std::vector<std::string> lines = Lines(path);
  std::vector<int64_t> epochs;
  if (lines.empty()) {
    ADD_FAILURE() << path << " is empty";
    return epochs;
  }
  EXPECT_EQ(lines[0], kHeader);
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::vector<std::string> fields = absl::StrSplit(lines[i], ',');
    EXPECT_EQ(fields.size(), 6u) << lines[i];
    for (const std::string& f : fields) {
      EXPECT_TRUE(std::isfinite(std::stod(f))) << lines[i];
    }
    epochs.push_back(std::stoll(fields[0]));
  }
  return epochs;
}

TrainOptions SmallRun(const std::string& out_dir) {
  TrainOptions o;
  o.epochs = 2;
  o.lr = 0.1f;
  o.batch_size = 32;
  o.threads = 2;
  o.seed = 1;
  o.out_dir = out_dir;
  o.progress = false;
  return o;
}

class TrainingTest : public ::testing::Test {
 protected:
  const data::InMemoryDataset train_ = FakeImages(512, /*seed=*/1);
  const data::InMemoryDataset test_ = FakeImages(128, /*seed=*/2);
};

std::map<std::string, Tensor> LoadTensors(const std::string& path) {
  absl::StatusOr<SafetensorsFile> f = LoadSafetensors(path);
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? f->tensors : std::map<std::string, Tensor>{};
}

// True when both state dicts have the same keys and bit-identical values.
bool BitIdentical(const std::map<std::string, Tensor>& a,
                  const std::map<std::string, Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [key, t] : a) {
    auto it = b.find(key);
    if (it == b.end() || it->second.shape() != t.shape()) return false;
    const std::vector<float> x = t.ToVector(), y = it->second.ToVector();
    if (std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) != 0) {
      return false;
    }
  }
  return true;
}

// Rewrites the metadata `key` of the checkpoint at `path` (CRC intact: it
// covers the data).
void SetMetadata(const std::string& path, const std::string& key,
                 const std::string& value) {
  absl::StatusOr<SafetensorsFile> f = LoadSafetensors(path);
  ASSERT_TRUE(f.ok()) << f.status();
  f->metadata[key] = value;
  ASSERT_TRUE(SaveSafetensors(path, *f).ok());
}

// Removes the metadata `key` of the checkpoint at `path` (checksums
// rewritten, as a tool that edits safetensors files would).
void EraseMetadata(const std::string& path, const std::string& key) {
  absl::StatusOr<SafetensorsFile> f = LoadSafetensors(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->metadata.erase(key), 1u) << key;
  ASSERT_TRUE(SaveSafetensors(path, *f).ok());
}

std::string Contents(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Rewrites the JSON header of the safetensors file at `path` by `edit`,
// leaving its checksums as they were (as a hand edit or a damaged disk
// would).
void EditHeader(const std::string& path,
                const std::function<std::string(std::string)>& edit) {
  const std::string bytes = Contents(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) {
    n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  }
  const std::string header = edit(bytes.substr(8, n));
  std::string length(8, '\0');
  for (int i = 0; i < 8; ++i) {
    length[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      << length << header << bytes.substr(8 + n);
}

// `text` with `from` replaced by `to` (which must be there).
std::string Replace(std::string text, const std::string& from,
                    const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from << " not in " << text;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

// The header of the file at `path` with the data offsets of two of its
// tensors of the same dtype and shape swapped: the data (and its CRC) stay
// the same, each tensor reads the other's values.
std::string SwapTwoEqualTensors(const std::string& path, std::string header) {
  absl::StatusOr<SafetensorsFile> f = LoadSafetensors(path);
  EXPECT_TRUE(f.ok()) << f.status();
  std::map<std::string, std::string> first_of_shape;
  for (const auto& [name, t] : f->tensors) {
    const std::string shape = t.shape().ToString();
    auto [it, fresh] = first_of_shape.emplace(shape, name);
    if (fresh) continue;
    const auto offsets = [&](const std::string& tensor) {
      const size_t at = header.find("\"" + tensor + "\":{");
      const size_t begin = header.find("\"data_offsets\":[", at);
      return header.substr(begin, header.find(']', begin) - begin + 1);
    };
    const std::string a = offsets(it->second), b = offsets(name);
    header = Replace(header, a, "@A@");
    return Replace(Replace(header, b, a), "@A@", b);
  }
  ADD_FAILURE() << path << " has no two tensors of the same shape";
  return header;
}

// Every file of `dir` (but its lock) and its bytes.
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename();
    if (name != ".lock") files[name] = Contents(entry.path());
  }
  return files;
}

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
  EXPECT_THAT(lines.back(), Not(HasSubstr("9.9")));  // the rerun's row

  // A deleted CSV is started again with its header.
  fs::remove(dir + "/metrics.csv");
  o.epochs = 4;
  ASSERT_TRUE(Train(models::SoftmaxSpec(), o, train_, test_).ok());
  EXPECT_EQ(CsvEpochs(dir + "/metrics.csv"), (std::vector<int64_t>{4}));
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

// Calls RequestStop(SIGINT) after global step `at`, as Ctrl-C would.
class StopAt : public TrainObserver {
 public:
  explicit StopAt(int64_t at) : at_(at) {}
  absl::Status OnStep(const TrainState& state, const StepInfo&) override {
    if (state.position.global_step == at_) RequestStop(SIGINT);
    return absl::OkStatus();
  }

 private:
  const int64_t at_;
};

// Every choice that carries state across steps: momentum or Adam moments,
// dropout or BatchNorm, augmentation, warm-up, a cosine schedule, clipping.
TrainOptions Everything(const std::string& dir, OptimizerKind optimizer) {
  TrainOptions o = SmallRun(dir);
  o.epochs = 3;
  o.optimizer = optimizer;
  o.lr = optimizer == OptimizerKind::kSgd ? 0.05f : 2e-3f;
  o.momentum = optimizer == OptimizerKind::kSgd ? 0.9f : 0.0f;
  o.weight_decay = 1e-3f;
  o.lr_schedule = LrScheduleKind::kCosine;
  o.warmup_epochs = 0.5;
  o.augment_flip = o.augment_crop = true;
  o.clip_grad_norm = 1.0f;
  return o;
}

// The CSV without its seconds and examples/sec columns.
std::vector<std::string> CsvValues(const std::string& path) {
  std::vector<std::string> rows;
  for (const std::string& line : Lines(path)) {
    const std::vector<std::string> f = absl::StrSplit(line, ',');
    rows.push_back(absl::StrCat(f[0], ",", f[1], ",", f[2], ",", f[3]));
  }
  return rows;
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

TEST_F(TrainingTest, EditedHeadersAreCaughtByTheHeaderChecksum) {
  // The edits of issue 33, by hand: the checksums no longer match. BN-LeNet
  // with momentum has tensors of equal shapes (a BatchNorm's weight and
  // bias, their momentum buffers, its running mean and variance).
  const std::string dir = FreshDir("edited");
  TrainOptions o = SmallRun(dir);
  o.epochs = 1;
  o.momentum = 0.9f;
  o.lr = 0.05f;
  ASSERT_TRUE(Train(models::BnLeNetSpec(), o, train_, test_).ok());
  const std::string state = dir + "/train_state.safetensors",
                    weights = dir + "/model.safetensors";
  o.resume = true;
  o.epochs = 2;
  const std::string good_state = Contents(state),
                    good_weights = Contents(weights);
  const auto replace = [](const char* from, const char* to) {
    return [=](std::string h) { return Replace(h, from, to); };
  };
  const struct {
    const char* name;
    std::string path;
    std::function<std::string(std::string)> edit;
  } cases[] = {
      {"step 0 -> 5", state, replace("\"step\":\"0\"", "\"step\":\"5\"")},
      {"global_step 16 -> 90", state,
       replace("\"global_step\":\"16\"", "\"global_step\":\"90\"")},
      {"seen 0 -> 2^62", state,
       replace("\"seen\":\"0\"", "\"seen\":\"4611686018427387904\"")},
      {"correct 0 -> 2^62", state,
       replace("\"correct\":\"0\"", "\"correct\":\"4611686018427387904\"")},
      {"setting.seed deleted", state, replace("\"setting.seed\":\"1\",", "")},
      {"momentum buffers swapped", state,
       [&](std::string h) { return SwapTwoEqualTensors(state, h); }},
      {"weights swapped", weights,
       [&](std::string h) { return SwapTwoEqualTensors(weights, h); }},
      {"weights' epoch 1 -> 2", weights,
       replace("\"epoch\":\"1\"", "\"epoch\":\"2\"")},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::ofstream(state, std::ios::binary) << good_state;
    std::ofstream(weights, std::ios::binary) << good_weights;
    EditHeader(c.path, c.edit);
    const std::map<std::string, std::string> before = Snapshot(dir);
    absl::StatusOr<TrainSummary> s =
        Train(models::BnLeNetSpec(), o, train_, test_);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
    EXPECT_THAT(std::string(s.status().message()),
                HasSubstr(c.path + ": header checksum mismatch"));
    EXPECT_EQ(Snapshot(dir), before);
    // Evaluation and export read the weights through the same check.
    if (c.path == weights) {
      auto model = models::BnLeNetSpec().make(28);
      EXPECT_EQ(LoadCheckpoint(weights, **model).code(),
                absl::StatusCode::kDataLoss);
    }
  }
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
  EXPECT_EQ(
      warnings.With("resuming with processes 2 (it was trained with 1)").size(),
      1u);
  EXPECT_EQ(CsvEpochs(dir + "/metrics.csv"), (std::vector<int64_t>{1, 2}));
  run = ReadRun(dir);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state->position.epoch, 2);
  EXPECT_EQ(run->state->position.global_step, 17 + 16);
  EXPECT_EQ(run->state->environment.steps_per_epoch, 16);

  // And back on one process: epochs of 17 and 16 batches are this run's.
  o.process_group = nullptr;
  o.epochs = 3;
  s = Train(models::SoftmaxSpec(), o, train, test_);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(CsvEpochs(dir + "/metrics.csv"), (std::vector<int64_t>{1, 2, 3}));
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

TEST_F(TrainingTest, DamagedTrainStateIsAnErrorNamingIt) {
  // Each value as a tool that rewrites the checksums would leave it: the
  // ranges catch what the checksums then cannot.
  const std::string dir = FreshDir("damaged_state");
  TrainOptions o = SmallRun(dir);
  o.epochs = 1;
  o.momentum = 0.5f;
  ASSERT_TRUE(Train(models::SoftmaxSpec(), o, train_, test_).ok());
  const std::string path = dir + "/train_state.safetensors",
                    weights = dir + "/model.safetensors";
  o.resume = true;
  o.epochs = 2;
  // After epoch 1 of 16 steps (512 images in batches of 32): epoch 1, step
  // 0, global_step 16, seen 0.
  const std::string huge = "4611686018427387904";  // 2^62
  const struct {
    const char* key;
    const char* value;  // null: the key is removed
    std::string message;
    bool in_weights_too = false;
  } cases[] = {
      {"step", "-1", "metadata step \"-1\" is not an integer"},
      {"step", "17",
       "metadata step \"17\" is not an integer in [0, 16] (at most "
       "steps_per_epoch)"},
      {"step", "5",
       "metadata global_step 16 does not follow epoch 1 and step 5: 1 epochs "
       "of 16 batches and then 5 make 21"},
      {"global_step", "90",
       "metadata global_step 90 does not follow epoch 1 and step 0: 1 epochs "
       "of 16 batches and then 0 make 16",
       /*in_weights_too=*/true},
      {"global_step", "90",
       "the state is at global_step 90 but the weights at global_step 16"},
      {"steps_per_epoch", "99",
       "metadata steps_per_epoch 99 does not fit this run: its 512 training "
       "examples in batches of 32 make 16 batches per epoch"},
      {"seen", huge.c_str(),
       "metadata seen 4611686018427387904 exceeds the 0 examples that 0 "
       "steps over 512 training examples in batches of 32 can see"},
      {"correct", huge.c_str(),
       "metadata correct \"4611686018427387904\" is not an integer in [0, 0] "
       "(at most seen)"},
      {"skipped_steps", "17",
       "metadata skipped_steps \"17\" is not an integer in [0, 16] (at most "
       "global_step)"},
      {"threads", "0", "metadata threads \"0\" is not an integer in [1, "},
      {"kernels", "avx9", "metadata kernels \"avx9\" is not a kernel path"},
      {"setting.seed", nullptr,
       "train_state.safetensors records no setting.seed, so --seed=1 cannot "
       "be checked against the run it continues"},
      {"processes", nullptr, "has no metadata processes"},
      {"format", "v0", "not a training state of this version"},
      {"format", "dive-train-state-1",
       "(format \"dive-train-state-1\", expected \"dive-train-state-2\")"},
      {"loss_sum", "nan", "metadata loss_sum \"nan\" is not a number"},
      {"epoch", "0", "the state is at epoch 0 but the weights at epoch 1"}};
  const std::string good = Contents(path), good_weights = Contents(weights);
  const std::string csv = Contents(dir + "/metrics.csv");
  for (const auto& c : cases) {
    SCOPED_TRACE(
        absl::StrCat(c.key, "=", c.value == nullptr ? "(none)" : c.value));
    std::ofstream(path, std::ios::binary) << good;
    std::ofstream(weights, std::ios::binary) << good_weights;
    if (c.value == nullptr) {
      EraseMetadata(path, c.key);
    } else {
      SetMetadata(path, c.key, c.value);
      if (c.in_weights_too) SetMetadata(weights, c.key, c.value);
    }
    absl::StatusOr<TrainSummary> s =
        Train(models::SoftmaxSpec(), o, train_, test_);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.message));
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(dir));
    EXPECT_EQ(Contents(dir + "/metrics.csv"), csv);
  }
  std::ofstream(weights, std::ios::binary) << good_weights;
  // An optimizer buffer of the wrong shape.
  std::ofstream(path, std::ios::binary) << good;
  absl::StatusOr<SafetensorsFile> f = LoadSafetensors(path);
  ASSERT_TRUE(f.ok());
  f->tensors["optimizer.0.0"] = Tensor::Zeros({3});
  ASSERT_TRUE(SaveSafetensors(path, *f).ok());
  absl::StatusOr<TrainSummary> s =
      Train(models::SoftmaxSpec(), o, train_, test_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument)
      << s.status();
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("SGD state '0.0': is float32 [3]; the parameter is"));
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

TEST_F(TrainingTest, CheckpointOfAnotherModelListsMismatchedKeys) {
  const std::string dir = FreshDir("other");
  TrainOptions o = SmallRun(dir);
  o.epochs = 1;
  ASSERT_TRUE(Train(models::SoftmaxSpec(), o, train_, test_).ok());
  const std::string path = dir + "/model.safetensors";

  auto lenet = models::LeNetSpec().make(28);
  absl::Status st = LoadCheckpoint(path, **lenet);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()),
              HasSubstr(absl::StrCat("checkpoint ", path, " does not fit")));
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("missing keys [0.bias, 0.weight, 11.bias"));
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("unexpected keys [1.bias, 1.weight]"));

  // The same model at another input size: a shape mismatch.
  auto bigger = models::SoftmaxSpec().make(32);
  st = LoadCheckpoint(path, **bigger);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("1.weight (expected [10, 1024], got [10, 784])"));

  // Resuming a run of another model fails before training, naming both.
  o.resume = true;
  o.epochs = 2;
  absl::StatusOr<TrainSummary> s = Train(models::LeNetSpec(), o, train_, test_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr(absl::StrCat("checkpoint ", path,
                                     " is of model 'softmax', not lenet")));
  // Without the model in its metadata (a converted file), the keys tell.
  SetMetadata(path, "model", "");
  s = Train(models::LeNetSpec(), o, train_, test_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("missing keys"));
}

TEST_F(TrainingTest, DamagedOrMissingCheckpointIsAnError) {
  const std::string dir = FreshDir("damaged");
  TrainOptions o = SmallRun(dir);
  o.epochs = 1;
  ASSERT_TRUE(Train(models::SoftmaxSpec(), o, train_, test_).ok());
  const std::string path = dir + "/model.safetensors";
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-100, std::ios::end);
    char c;
    f.get(c);
    f.seekp(-100, std::ios::end);
    f.put(static_cast<char>(c ^ 0x20));
  }
  auto model = models::SoftmaxSpec().make(28);
  absl::Status st = LoadCheckpoint(path, **model);
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("checksum mismatch"));
  EXPECT_THAT(std::string(st.message()), HasSubstr(path));

  st = LoadCheckpoint(dir + "/nope.safetensors", **model);
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound) << st;

  // --resume with nothing to resume names the file it looked for.
  o.out_dir = FreshDir("empty_resume");
  o.resume = true;
  absl::StatusOr<TrainSummary> s =
      Train(models::SoftmaxSpec(), o, train_, test_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr(o.out_dir + "/model.safetensors"));
}

TEST_F(TrainingTest, BadCheckpointMetadataIsRefusedBeforeAnythingChanges) {
  const std::string dir = FreshDir("metadata");
  TrainOptions o = SmallRun(dir);
  o.epochs = 1;
  ASSERT_TRUE(Train(models::SoftmaxSpec(), o, train_, test_).ok());
  const std::string ckpt = dir + "/model.safetensors",
                    csv = dir + "/metrics.csv";
  const std::string good = Contents(ckpt);
  // A row the resume would trim: it must survive every refused resume.
  std::ofstream(csv, std::ios::app) << "2,0.5,0.5,0.5,1.0,1.0\n";
  const std::string csv_before = Contents(csv);
  struct Case {
    const char* key;
    const char* value;
    absl::StatusCode code;
    std::string message;
  };
  const Case cases[] = {
      {"epoch", "-3", absl::StatusCode::kDataLoss,
       "metadata epoch \"-3\" is not an integer in [0, 1000000]"},
      {"epoch", "9223372036854775807", absl::StatusCode::kDataLoss,
       "metadata epoch \"9223372036854775807\" is not an integer in [0, "
       "1000000]"},
      {"epoch", "1e3", absl::StatusCode::kDataLoss, "metadata epoch \"1e3\""},
      {"epoch", "", absl::StatusCode::kDataLoss, "metadata epoch \"\""},
      {"input_size", "0", absl::StatusCode::kDataLoss,
       "metadata input_size \"0\" is not an integer in [1, 65536]"},
      {"input_size", "32", absl::StatusCode::kInvalidArgument,
       "--resize=28: checkpoint " + ckpt +
           " was trained at input size 32; resume with --resize=32"},
      {"model", "lenet", absl::StatusCode::kInvalidArgument,
       "checkpoint " + ckpt + " is of model 'lenet', not softmax"},
  };
  o.resume = true;
  o.epochs = 3;
  for (const Case& c : cases) {
    std::ofstream(ckpt, std::ios::trunc | std::ios::binary) << good;
    SetMetadata(ckpt, c.key, c.value);
    absl::StatusOr<TrainSummary> s =
        Train(models::SoftmaxSpec(), o, train_, test_);
    EXPECT_EQ(s.status().code(), c.code) << c.key << "=" << c.value;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.message))
        << c.key << "=" << c.value;
    EXPECT_EQ(Contents(csv), csv_before) << c.key << "=" << c.value;
    auto model = models::SoftmaxSpec().make(28);
    if (c.code == absl::StatusCode::kDataLoss) {
      EXPECT_EQ(LoadCheckpoint(ckpt, **model).code(), c.code);
    }
  }
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
