// Saved work survives a crash, and a resumed run is the run it continues.
//
// A trainer child process is SIGKILLed at random
// moments, many of them in the middle of writing a checkpoint, and after each
// kill the run directory must still hold a checkpoint that loads (checksum
// included) and `--resume` must finish the run from it, with metrics.csv
// continuing row by row.
//
// The child is //models/mlp:train at --resize=128 (4.2M parameters, a 17 MB
// checkpoint) on 8 fake images per epoch, so an epoch is little more than a
// save (about 0.15 s). Half the attempts kill at a seeded random time; the
// other half wait until a save is writing its weights
// ("model.safetensors.pending.tmp" exists) and kill a seeded random moment
// (0 to 4 ms) later. The trainers run as child processes
// (train/testing/trainer_process.h).

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "datasets/testing/fake_data.h"
#include "gtest/gtest.h"
#include "models/mlp/mlp.h"
#include "tensor/safetensors.h"
#include "train/testing/small_runs.h"
#include "train/testing/trainer_process.h"
#include "train/training.h"

namespace dive::train {
namespace {

namespace fs = std::filesystem;
using ::dive::train::testing::ChildGuard;
using ::dive::train::testing::ReadFile;
using ::dive::train::testing::RunToEnd;
using ::dive::train::testing::Snapshot;
using ::dive::train::testing::Spawn;
using ::dive::train::testing::TrainerPath;
using ::dive::train::testing::WaitFor;

constexpr int64_t kInputSize = 128;
constexpr int kAttempts = 8;

// The epochs of metrics.csv's complete rows (header checked).
std::vector<int64_t> CsvEpochs(const std::string& path) {
  std::vector<int64_t> epochs;
  const std::string text = ReadFile(path);
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (lines.empty() ||
      lines[0] != "epoch,loss,train_acc,test_acc,seconds,examples_per_sec") {
    ADD_FAILURE() << path << " has no header:\n" << text;
    return epochs;
  }
  lines.pop_back();  // after the last newline: empty, or a partial row
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::vector<std::string> fields = absl::StrSplit(lines[i], ',');
    int64_t epoch = 0;
    EXPECT_EQ(fields.size(), 6u) << path << ": " << lines[i];
    EXPECT_TRUE(absl::SimpleAtoi(fields[0], &epoch)) << lines[i];
    epochs.push_back(epoch);
  }
  return epochs;
}

std::vector<int64_t> Range(int64_t first, int64_t last) {
  std::vector<int64_t> v;
  for (int64_t e = first; e <= last; ++e) v.push_back(e);
  return v;
}

// Empties `root` and writes fake Fashion-MNIST into `data` below it:
// `train` training images, 8 test images.
absl::Status FreshFakeData(const std::string& root, const std::string& data,
                           int64_t train) {
  fs::remove_all(root);
  return data::testing::WriteFakeFashionMnist(data,
                                              {.train = train, .test = 8});
}

// Both files of the checkpoint in `out` are those in `whole`, byte for byte
// (their data CRCs) and tensor for tensor.
void ExpectSameCheckpoint(const std::string& whole, const std::string& out) {
  for (const char* file : {"model.safetensors", "train_state.safetensors"}) {
    absl::StatusOr<SafetensorsFile> a =
        LoadSafetensors(absl::StrCat(whole, "/", file));
    absl::StatusOr<SafetensorsFile> b =
        LoadSafetensors(absl::StrCat(out, "/", file));
    ASSERT_TRUE(a.ok() && b.ok()) << file;
    EXPECT_EQ(a->crc32, b->crc32) << file << " differs";
    EXPECT_EQ(a->tensors.size(), b->tensors.size()) << file;
  }
}

// The checkpoint's epoch after checking that it loads into the model.
int64_t CheckpointEpoch(const std::string& path) {
  absl::StatusOr<SafetensorsFile> file = LoadSafetensors(path);
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return -1;
  auto model = models::MlpSpec().make(kInputSize);
  int64_t epoch = -1;
  const absl::Status s = LoadCheckpoint(path, **model, &epoch);
  EXPECT_TRUE(s.ok()) << s;
  return epoch;
}

TEST(KillDuringSaveTest, CheckpointSurvivesAndResumeFinishesTheRun) {
  const std::string trainer = TrainerPath();
  ASSERT_TRUE(fs::exists(trainer)) << trainer;
  const std::string root = ::testing::TempDir() + "/kill";
  const std::string data = root + "/data";
  ASSERT_TRUE(FreshFakeData(root, data, 8).ok());

  std::mt19937 rng(20240601);  // fixed: the same kill schedule every run
  int mid_save_kills = 0;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    SCOPED_TRACE(absl::StrCat("attempt ", attempt));
    const std::string out = absl::StrCat(root, "/run", attempt);
    const std::string ckpt = out + "/model.safetensors";
    const std::string pending = out + "/model.safetensors.pending";
    const std::string log = absl::StrCat(root, "/run", attempt, ".log");
    const std::vector<std::string> args = {
        trainer,
        "--data_dir=" + data,
        "--out=" + out,
        absl::StrCat("--resize=", kInputSize),
        "--train_limit=8",
        "--test_limit=8",
        "--batch_size=8",
        "--threads=1",
        "--progress=false",
        absl::StrCat("--seed=", attempt)};
    std::vector<std::string> run = args;
    run.push_back("--epochs=1000");
    ChildGuard child{Spawn(run, log)};
    ASSERT_GT(child.pid, 0);

    // Let it write a first checkpoint.
    ASSERT_TRUE(WaitFor([&] { return fs::exists(ckpt); }, child.pid,
                        std::chrono::seconds(120)))
        << ReadFile(log);
    if (attempt % 2 == 0) {
      // Any moment of the next few epochs.
      std::this_thread::sleep_for(std::chrono::milliseconds(
          std::uniform_int_distribution<int>(0, 600)(rng)));
    } else {
      // Some moment of a save: after its weights' temporary file appears.
      ASSERT_TRUE(WaitFor([&] { return fs::exists(pending + ".tmp"); },
                          child.pid, std::chrono::seconds(60)))
          << ReadFile(log);
      std::this_thread::sleep_for(std::chrono::microseconds(
          std::uniform_int_distribution<int>(0, 4000)(rng)));
    }
    ASSERT_EQ(kill(child.pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(child.pid, &status, 0), child.pid);
    child.pid = 0;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the trainer ended on its own (status " << status << "):\n"
        << ReadFile(log);
    // A save's files outlive the kill only when the kill cut it short (the
    // renames remove them).
    const bool mid_save = fs::exists(pending + ".tmp") || fs::exists(pending) ||
                          fs::exists(out + "/train_state.safetensors.tmp");
    mid_save_kills += mid_save;

    // The checkpoint loads, checksum and all.
    const int64_t epoch = CheckpointEpoch(ckpt);
    ASSERT_GE(epoch, 1);
    // Each epoch writes its row before its checkpoint: the CSV holds epochs
    // 1..epoch, plus at most the next one.
    const std::vector<int64_t> rows = CsvEpochs(out + "/metrics.csv");
    EXPECT_TRUE(rows == Range(1, epoch) || rows == Range(1, epoch + 1))
        << "checkpoint epoch " << epoch << ", csv:\n"
        << ReadFile(out + "/metrics.csv");
    std::printf("attempt %d: killed after epoch %ld%s; csv had %zu rows\n",
                attempt, epoch, mid_save ? ", in the middle of a save" : "",
                rows.size());

    // --resume finishes the run from there.
    std::vector<std::string> resume = args;
    resume.push_back("--resume");
    resume.push_back(absl::StrCat("--epochs=", epoch + 2));
    ChildGuard resumed{Spawn(resume, log)};
    ASSERT_EQ(waitpid(resumed.pid, &status, 0), resumed.pid);
    resumed.pid = 0;
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "resume failed (status " << status << "):\n"
        << ReadFile(log);
    EXPECT_EQ(CheckpointEpoch(ckpt), epoch + 2);
    EXPECT_EQ(CsvEpochs(out + "/metrics.csv"), Range(1, epoch + 2))
        << ReadFile(out + "/metrics.csv");
    for (const auto& entry : fs::directory_iterator(out)) {
      EXPECT_NE(entry.path().extension(), ".tmp") << entry.path();
      EXPECT_NE(entry.path().extension(), ".pending") << entry.path();
    }
    fs::remove_all(out);
  }
  std::printf("%d of %d kills landed in the middle of a save\n", mid_save_kills,
              kAttempts);
  // The aimed attempts must hit saves, or the test proves little.
  EXPECT_GE(mid_save_kills, 1);
}

// The inode of `path` (0 when absent): each save renames a new file there.
ino_t Inode(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// The done-when of exact resume: a trainer killed (SIGKILL: from its last
// step checkpoint) or stopped (SIGTERM: it checkpoints the step it is at)
// at a step inside an epoch, then resumed, ends with the weights and
// training state of the uninterrupted run, bit for bit. With dropout and
// Adam (the MLP) and with BatchNorm and momentum (BN-LeNet), a cosine
// schedule with warm-up, flip and crop augmentation and clipping.
TEST(KillAtAStepTest, ResumedRunIsBitIdenticalToTheUninterruptedOne) {
  const std::string root = ::testing::TempDir() + "/kill_step";
  const std::string data = root + "/data";
  ASSERT_TRUE(FreshFakeData(root, data, 64).ok());
  struct Model {
    std::string binary;
    std::vector<std::string> flags;
  };
  const Model models[] = {
      {"mlp", {"--dropout", "--resize=96", "--optimizer=adam", "--lr=1e-3"}},
      {"bn_lenet",
       {"--resize=28", "--optimizer=sgd", "--lr=0.05", "--momentum=0.9"}}};
  int inside_an_epoch = 0;
  for (const Model& m : models) {
    const std::string trainer = TrainerPath(m.binary);
    ASSERT_TRUE(fs::exists(trainer)) << trainer;
    std::vector<std::string> args = {trainer,
                                     "--data_dir=" + data,
                                     "--train_limit=64",
                                     "--test_limit=8",
                                     "--batch_size=8",
                                     "--threads=1",
                                     "--progress=false",
                                     "--epochs=6",
                                     "--weight_decay=1e-3",
                                     "--lr_schedule=cosine",
                                     "--warmup_epochs=0.5",
                                     "--augment=flip,crop",
                                     "--clip_grad_norm=1",
                                     "--checkpoint_every=1"};
    args.insert(args.end(), m.flags.begin(), m.flags.end());
    const auto in = [&](const std::string& dir) {
      std::vector<std::string> a = args;
      a.push_back("--out=" + dir);
      return a;
    };
    const std::string whole = root + "/" + m.binary + "_whole";
    const std::string log = root + "/" + m.binary + ".log";
    int status = RunToEnd(in(whole), log);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(log);

    for (int signal : {SIGKILL, SIGTERM}) {
      SCOPED_TRACE(absl::StrCat(m.binary, ", signal ", signal));
      const std::string out = absl::StrCat(root, "/", m.binary, "_", signal);
      const std::string state = out + "/train_state.safetensors";
      ChildGuard child{Spawn(in(out), log)};
      // A few step checkpoints into the run (48 steps, 8 per epoch).
      ino_t seen = 0;
      int saves = 0;
      ASSERT_TRUE(WaitFor(
          [&] {
            const ino_t now = Inode(state);
            if (now != 0 && now != seen) ++saves, seen = now;
            return saves >= (signal == SIGKILL ? 11 : 19);
          },
          child.pid, std::chrono::seconds(120)))
          << ReadFile(log);
      ASSERT_EQ(kill(child.pid, signal), 0);
      ASSERT_EQ(waitpid(child.pid, &status, 0), child.pid);
      child.pid = 0;
      if (signal == SIGKILL) {
        ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            << ReadFile(log);
      } else {  // checkpointed and exited 128 + SIGTERM
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM)
            << "status " << status << "\n"
            << ReadFile(log);
      }
      absl::StatusOr<SafetensorsFile> at = LoadSafetensors(state);
      ASSERT_TRUE(at.ok()) << at.status();
      const std::string step = at->metadata["step"];
      std::printf("%s: signal %d at epoch %s step %s\n", m.binary.c_str(),
                  signal, at->metadata["epoch"].c_str(), step.c_str());
      inside_an_epoch += step != "0";

      std::vector<std::string> resume = in(out);
      resume.push_back("--resume");
      status = RunToEnd(resume, log);
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << ReadFile(log);
      ExpectSameCheckpoint(whole, out);
      EXPECT_EQ(CsvEpochs(out + "/metrics.csv"), Range(1, 6));
    }
  }
  EXPECT_GE(inside_an_epoch, 2) << "the kills should land inside epochs";
}

// Issue 33: a trainer killed between the two steps of a save's commit (the
// state renamed into place, the weights not yet) left the newest weights in
// a temporary file; a run started without --resume then deleted it before
// refusing to run, and the run was lost. Here a test hook stops the writer
// exactly there (DIVE_TEST_STOP_MID_COMMIT, train/checkpoint.cc) and the
// test kills it: a run without --resume is refused and changes nothing, and
// --resume completes the save and ends bit-identical to the uninterrupted
// run.
TEST(KillMidCommitTest, RefusedRunLosesNothingAndResumeIsBitIdentical) {
  const std::string root = ::testing::TempDir() + "/kill_mid_commit";
  const std::string data = root + "/data";
  ASSERT_TRUE(FreshFakeData(root, data, 64).ok());
  const std::string trainer = TrainerPath("mlp");
  ASSERT_TRUE(fs::exists(trainer)) << trainer;
  const auto in = [&](const std::string& out) {
    return std::vector<std::string>{
        trainer,          "--data_dir=" + data,  "--out=" + out,
        "--dropout",      "--resize=28",         "--optimizer=adam",
        "--lr=1e-3",      "--train_limit=64",    "--test_limit=8",
        "--batch_size=8", "--threads=1",         "--progress=false",
        "--epochs=3",     "--checkpoint_every=1"};
  };
  const std::string whole = root + "/whole", out = root + "/cut";
  const std::string log = root + "/log";
  int status = RunToEnd(in(whole), log);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(log);

  // Saves 1-8 are epoch 1's steps, 9 its end, 10 and 11 epoch 2's first
  // two steps: stopped in the 11th (global step 10), after its commit.
  setenv("DIVE_TEST_STOP_MID_COMMIT", "11", 1);
  ChildGuard child{Spawn(in(out), log)};
  unsetenv("DIVE_TEST_STOP_MID_COMMIT");
  ASSERT_EQ(waitpid(child.pid, &status, WUNTRACED), child.pid);
  ASSERT_TRUE(WIFSTOPPED(status)) << "status " << status << "\n"
                                  << ReadFile(log);
  ASSERT_EQ(kill(child.pid, SIGKILL), 0);
  ASSERT_EQ(waitpid(child.pid, &status, 0), child.pid);
  child.pid = 0;
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  absl::StatusOr<SavedRun> cut = ReadRun(out);
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_TRUE(cut->pending);
  EXPECT_EQ(cut->state->position.global_step, 10);
  const std::map<std::string, std::string> before = Snapshot(out);
  ASSERT_TRUE(before.count("model.safetensors.pending"));

  // The user forgets --resume: refused, saying what it found; nothing lost.
  const size_t logged = ReadFile(log).size();
  status = RunToEnd(in(out), log);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0);
  const std::string refusal = ReadFile(log).substr(logged);
  EXPECT_NE(refusal.find("already holds a run (model.safetensors, "
                         "train_state.safetensors, metrics.csv; a checkpoint "
                         "at epoch 2 step 2, whose weights a save cut short "
                         "left in model.safetensors.pending (--resume "
                         "completes that save)); pass --resume"),
            std::string::npos)
      << refusal;
  EXPECT_EQ(Snapshot(out), before);

  // --resume completes the save and ends where the uninterrupted run does.
  std::vector<std::string> resume = in(out);
  resume.push_back("--resume");
  status = RunToEnd(resume, log);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(log);
  EXPECT_FALSE(fs::exists(out + "/model.safetensors.pending"));
  ExpectSameCheckpoint(whole, out);
  EXPECT_EQ(CsvEpochs(out + "/metrics.csv"), Range(1, 3));
}

}  // namespace
}  // namespace dive::train
