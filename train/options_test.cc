// The trainer's options: flag spellings and parsers, the checks of every
// option, the thread cap and the settings a resumed run must keep.

#include "train/options.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dive::train {
namespace {

using ::testing::HasSubstr;

struct BadOption {
  const char* name;
  void (*set)(TrainOptions&);
  absl::StatusCode code;
  const char* message;
};

TEST(ValidateOptionsTest, NamesTheFlagOfEveryBadOption) {
  using C = absl::StatusCode;
  const BadOption cases[] = {
      {"epochs 0", [](TrainOptions& o) { o.epochs = 0; }, C::kInvalidArgument,
       "--epochs=0: must be positive"},
      {"epochs -3", [](TrainOptions& o) { o.epochs = -3; }, C::kInvalidArgument,
       "--epochs=-3"},
      {"epochs 2^63-1",
       [](TrainOptions& o) { o.epochs = std::numeric_limits<int64_t>::max(); },
       C::kInvalidArgument,
       "--epochs=9223372036854775807: must be at most 1000000"},
      {"lr 0", [](TrainOptions& o) { o.lr = 0; }, C::kInvalidArgument,
       "--lr=0: must be a positive number"},
      {"lr -1", [](TrainOptions& o) { o.lr = -1; }, C::kInvalidArgument,
       "--lr=-1"},
      {"lr nan", [](TrainOptions& o) { o.lr = std::nanf(""); },
       C::kInvalidArgument, "--lr=nan"},
      {"lr inf",
       [](TrainOptions& o) { o.lr = std::numeric_limits<float>::infinity(); },
       C::kInvalidArgument, "--lr=inf"},
      {"batch_size 0", [](TrainOptions& o) { o.batch_size = 0; },
       C::kInvalidArgument, "--batch_size=0: must be positive"},
      {"batch_size -1", [](TrainOptions& o) { o.batch_size = -1; },
       C::kInvalidArgument, "--batch_size=-1"},
      {"resize 0", [](TrainOptions& o) { o.input_size = 0; },
       C::kInvalidArgument, "--resize=0: must be positive"},
      {"weight_decay -0.1", [](TrainOptions& o) { o.weight_decay = -0.1f; },
       C::kInvalidArgument, "--weight_decay=-0.1: must be >= 0"},
      {"weight_decay nan",
       [](TrainOptions& o) { o.weight_decay = std::nanf(""); },
       C::kInvalidArgument, "--weight_decay=nan"},
      {"momentum 1", [](TrainOptions& o) { o.momentum = 1; },
       C::kInvalidArgument, "--momentum=1: must be in [0, 1)"},
      {"momentum -0.5", [](TrainOptions& o) { o.momentum = -0.5f; },
       C::kInvalidArgument, "--momentum=-0.5"},
      {"momentum nan", [](TrainOptions& o) { o.momentum = std::nanf(""); },
       C::kInvalidArgument, "--momentum=nan"},
      {"momentum with adam",
       [](TrainOptions& o) {
         o.optimizer = OptimizerKind::kAdam;
         o.momentum = 0.9f;
       },
       C::kInvalidArgument,
       "--momentum=0.9: applies to --optimizer=sgd, not adam"},
      {"step schedule without its step",
       [](TrainOptions& o) { o.lr_schedule = LrScheduleKind::kStep; },
       C::kInvalidArgument,
       "--lr_step_epochs=0: must be in [1, 1000000] with --lr_schedule=step"},
      {"lr_gamma 0",
       [](TrainOptions& o) {
         o.lr_schedule = LrScheduleKind::kStep;
         o.lr_step_epochs = 2;
         o.lr_gamma = 0;
       },
       C::kInvalidArgument, "--lr_gamma=0: must be a positive number"},
      {"warmup longer than the run",
       [](TrainOptions& o) { o.warmup_epochs = 11; }, C::kInvalidArgument,
       "--warmup_epochs=11: must be in [0, --epochs="},
      {"warmup nan", [](TrainOptions& o) { o.warmup_epochs = std::nan(""); },
       C::kInvalidArgument, "--warmup_epochs=nan"},
      {"clip_grad_norm -1", [](TrainOptions& o) { o.clip_grad_norm = -1; },
       C::kInvalidArgument, "--clip_grad_norm=-1: must be >= 0 (0: off)"},
      {"checkpoint_every -1", [](TrainOptions& o) { o.checkpoint_every = -1; },
       C::kInvalidArgument, "--checkpoint_every=-1: must be >= 0"},
      {"checkpoint_every without out",
       [](TrainOptions& o) {
         o.checkpoint_every = 5;
         o.out_dir.clear();
       },
       C::kInvalidArgument, "--checkpoint_every=5: needs --out"},
      {"threads -1", [](TrainOptions& o) { o.threads = -1; },
       C::kInvalidArgument, "--threads=-1: must be >= 0"},
      {"train_limit -1", [](TrainOptions& o) { o.train_limit = -1; },
       C::kInvalidArgument, "--train_limit=-1: must be >= 0"},
      {"test_limit -5", [](TrainOptions& o) { o.test_limit = -5; },
       C::kInvalidArgument, "--test_limit=-5: must be >= 0"},
      {"log_every 0", [](TrainOptions& o) { o.log_every = 0; },
       C::kInvalidArgument, "log_every=0"},
      {"resume without out",
       [](TrainOptions& o) {
         o.resume = true;
         o.out_dir.clear();
       },
       C::kInvalidArgument, "--resume needs --out"},
  };
  TrainOptions good;
  good.out_dir = absl::StrCat(::testing::TempDir(), "/validate/not/made");
  ASSERT_TRUE(ValidateOptions(good).ok());
  // It only reads the options: the directory is made when the run starts.
  EXPECT_FALSE(std::filesystem::exists(good.out_dir));
  for (const BadOption& c : cases) {
    TrainOptions o = good;
    c.set(o);
    const absl::Status s = ValidateOptions(o);
    EXPECT_EQ(s.code(), c.code) << c.name << ": " << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.message)) << c.name;
  }
}


TEST(FlagChoicesTest, ParseWhatNamePrintsAndRefuseTheRest) {
  for (OptimizerKind k :
       {OptimizerKind::kSgd, OptimizerKind::kAdam, OptimizerKind::kAdamW}) {
    EXPECT_EQ(*ParseOptimizer(OptimizerName(k)), k);
  }
  for (LrScheduleKind k : {LrScheduleKind::kConstant, LrScheduleKind::kStep,
                           LrScheduleKind::kCosine}) {
    EXPECT_EQ(*ParseLrSchedule(LrScheduleName(k)), k);
  }
  for (bool flip : {false, true}) {
    for (bool crop : {false, true}) {
      bool f = !flip, c = !crop;
      ASSERT_TRUE(ParseAugment(AugmentName(flip, crop), &f, &c).ok());
      EXPECT_EQ(f, flip);
      EXPECT_EQ(c, crop);
    }
  }
  bool f, c;
  EXPECT_THAT(std::string(ParseOptimizer("Adam").status().message()),
              HasSubstr("--optimizer=Adam: must be sgd, adam or adamw"));
  EXPECT_THAT(std::string(ParseLrSchedule("").status().message()),
              HasSubstr("--lr_schedule=: must be constant, step or cosine"));
  EXPECT_THAT(std::string(ParseAugment("flip,rotate", &f, &c).message()),
              HasSubstr("unknown augmentation 'rotate'"));
  EXPECT_THAT(std::string(ParseAugment("crop,crop", &f, &c).message()),
              HasSubstr("'crop' given twice"));
  EXPECT_FALSE(ParseAugment("flip,", &f, &c).ok());
}

TEST(CapThreadsTest, CapsAtAFewThreadsPerCore) {
  const int cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  EXPECT_EQ(CapThreads(0), 0);  // all cores
  EXPECT_EQ(CapThreads(1), 1);
  EXPECT_EQ(CapThreads(kMaxThreadsPerCore * cores), kMaxThreadsPerCore * cores);
  EXPECT_EQ(CapThreads(kMaxThreadsPerCore * cores + 1),
            kMaxThreadsPerCore * cores);
  EXPECT_EQ(CapThreads(100000), kMaxThreadsPerCore * cores);
  EXPECT_EQ(CapThreads(std::numeric_limits<int>::max()),
            kMaxThreadsPerCore * cores);
}

TEST(ResumeSettingsTest, RecordWhatChangesTheRunAndOnlyThat) {
  TrainOptions o;
  const std::map<std::string, std::string> plain = ResumeSettings(o);
  EXPECT_EQ(plain.at("optimizer"), "sgd");
  EXPECT_EQ(plain.at("lr"), "0.100000001");  // the float, all its digits
  EXPECT_EQ(plain.at("precision"), "fp32");
  // Settings of other choices appear with them.
  EXPECT_EQ(plain.count("lr_step_epochs"), 0u);
  EXPECT_EQ(plain.count("epochs"), 0u);  // more epochs continue a run
  o.lr_schedule = LrScheduleKind::kCosine;
  EXPECT_EQ(ResumeSettings(o).at("epochs"), "10");  // the cosine's length
  o.lr_schedule = LrScheduleKind::kStep;
  o.lr_step_epochs = 3;
  EXPECT_EQ(ResumeSettings(o).at("lr_step_epochs"), "3");
  // What does not change the run is not recorded.
  o = TrainOptions();
  o.threads = 7;
  o.out_dir = "/elsewhere";
  o.progress = false;
  EXPECT_EQ(ResumeSettings(o), plain);
}

}  // namespace
}  // namespace dive::train
