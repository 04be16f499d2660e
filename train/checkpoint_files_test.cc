// Damaged, edited and mismatched checkpoint files, met by a resume, an
// evaluation or an export (fake data, train/testing/small_runs.h): a header
// edited by hand, every field of the training state out of range or
// missing, a flipped bit, metadata that does not fit, the checkpoint of
// another model. Each is an error naming the file, and nothing in the run
// directory changes.

#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/bn_lenet/bn_lenet.h"
#include "models/lenet/lenet.h"
#include "models/softmax/softmax.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"
#include "train/testing/small_runs.h"
#include "train/training.h"

namespace dive::train {
namespace {

using ::dive::train::testing::Contents;
using ::dive::train::testing::EraseMetadata;
using ::dive::train::testing::FreshDir;
using ::dive::train::testing::SetMetadata;
using ::dive::train::testing::SmallRun;
using ::dive::train::testing::Snapshot;
using ::dive::train::testing::TrainingTest;
using ::testing::HasSubstr;

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

}  // namespace
}  // namespace dive::train
