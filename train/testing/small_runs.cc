#include "train/testing/small_runs.h"

#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tensor/safetensors.h"
#include "train/stop.h"

namespace dive::train::testing {

namespace fs = std::filesystem;

namespace {

constexpr char kHeader[] =
    "epoch,loss,train_acc,test_acc,seconds,examples_per_sec";

}  // namespace

std::string FreshDir(const std::string& name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/", name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
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

absl::Status StopAt::OnStep(const TrainState& state, const StepInfo&) {
  if (state.position.global_step == at_) RequestStop(SIGINT);
  return absl::OkStatus();
}

std::string Contents(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

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

std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename();
    if (name != ".lock") files[name] = Contents(entry.path());
  }
  return files;
}

std::map<std::string, Tensor> LoadTensors(const std::string& path) {
  absl::StatusOr<SafetensorsFile> f = LoadSafetensors(path);
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? f->tensors : std::map<std::string, Tensor>{};
}

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

void SetMetadata(const std::string& path, const std::string& key,
                 const std::string& value) {
  absl::StatusOr<SafetensorsFile> f = LoadSafetensors(path);
  ASSERT_TRUE(f.ok()) << f.status();
  f->metadata[key] = value;
  ASSERT_TRUE(SaveSafetensors(path, *f).ok());
}

void EraseMetadata(const std::string& path, const std::string& key) {
  absl::StatusOr<SafetensorsFile> f = LoadSafetensors(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->metadata.erase(key), 1u) << key;
  ASSERT_TRUE(SaveSafetensors(path, *f).ok());
}

}  // namespace dive::train::testing
