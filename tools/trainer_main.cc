#include "tools/trainer_main.h"

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "datasets/fashion_mnist.h"
#include "glog/logging.h"
#include "tools/training.h"

ABSL_FLAG(int64_t, epochs, 0, "Training epochs (0: the book's recipe).");
ABSL_FLAG(double, lr, 0, "Learning rate (0: the book's recipe).");
ABSL_FLAG(int64_t, batch_size, 0, "Minibatch size (0: the book's recipe).");
ABSL_FLAG(int64_t, resize, 0,
          "Input side in pixels; images are resized bilinearly "
          "(0: the book's recipe).");
ABSL_FLAG(int, threads, 0, "Compute threads (0: all cores).");
ABSL_FLAG(uint64_t, seed, 0, "Seed for initialization and shuffling.");
ABSL_FLAG(double, weight_decay, 0, "L2 penalty (SGD weight decay).");
ABSL_FLAG(double, momentum, 0, "SGD momentum.");
ABSL_FLAG(int64_t, train_limit, 0, "Use only the first N training images.");
ABSL_FLAG(int64_t, test_limit, 0, "Use only the first N test images.");
ABSL_FLAG(std::string, data_dir, dive::kDefaultFashionMnistDir,
          "Directory with the Fashion-MNIST IDX files.");
ABSL_FLAG(std::string, out, "",
          "Directory for model.safetensors, metrics.csv and metrics.png.");
ABSL_FLAG(bool, resume, false, "Continue from --out/model.safetensors.");
ABSL_FLAG(bool, skip_nonfinite, false,
          "Skip steps whose loss is NaN or Inf instead of stopping.");
ABSL_FLAG(bool, progress, true, "Show per-step progress.");

namespace dive::tools {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
  return 1;
}

}  // namespace

int TrainerMain(int argc, char** argv,
                const std::function<models::ModelSpec()>& make_spec) {
  absl::SetProgramUsageMessage(
      "Trains a model of the zoo on Fashion-MNIST with the book's recipe.");
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);

  const models::ModelSpec spec = make_spec();
  TrainOptions o;
  const models::Recipe& r = spec.recipe;
  o.epochs = absl::GetFlag(FLAGS_epochs) != 0 ? absl::GetFlag(FLAGS_epochs) : r.epochs;
  o.lr = absl::GetFlag(FLAGS_lr) != 0 ? static_cast<float>(absl::GetFlag(FLAGS_lr)) : r.lr;
  o.batch_size = absl::GetFlag(FLAGS_batch_size) != 0 ? absl::GetFlag(FLAGS_batch_size)
                                                      : r.batch_size;
  o.input_size = absl::GetFlag(FLAGS_resize) != 0 ? absl::GetFlag(FLAGS_resize)
                                                  : r.input_size;
  o.threads = absl::GetFlag(FLAGS_threads);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.weight_decay = static_cast<float>(absl::GetFlag(FLAGS_weight_decay));
  o.momentum = static_cast<float>(absl::GetFlag(FLAGS_momentum));
  o.train_limit = absl::GetFlag(FLAGS_train_limit);
  o.test_limit = absl::GetFlag(FLAGS_test_limit);
  o.out_dir = absl::GetFlag(FLAGS_out);
  o.resume = absl::GetFlag(FLAGS_resume);
  o.skip_nonfinite = absl::GetFlag(FLAGS_skip_nonfinite);
  o.progress = absl::GetFlag(FLAGS_progress);
  if (absl::Status s = ValidateOptions(o); !s.ok()) return Fail(s);
  // Build once up front so an unsupported --resize fails before data loads.
  if (auto made = spec.make(o.input_size); !made.ok()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--resize=", o.input_size, ": ", made.status().message())));
  }

  const std::string dir = absl::GetFlag(FLAGS_data_dir);
  absl::StatusOr<InMemoryDataset> train = LoadFashionMnist(dir, Split::kTrain);
  if (!train.ok()) return Fail(train.status());
  absl::StatusOr<InMemoryDataset> test = LoadFashionMnist(dir, Split::kTest);
  if (!test.ok()) return Fail(test.status());

  LOG(INFO) << spec.description << ": " << o.epochs << " epochs, lr " << o.lr
            << ", batch " << o.batch_size << ", input " << o.input_size << "x"
            << o.input_size << ", threads "
            << (o.threads == 0 ? std::string("all") : absl::StrCat(o.threads));
  absl::StatusOr<TrainSummary> summary = Train(spec, o, *train, *test);
  if (!summary.ok()) return Fail(summary.status());
  if (!o.out_dir.empty()) {
    LOG(INFO) << "wrote " << o.out_dir << "/{model.safetensors,metrics.csv,metrics.png}";
  }
  return 0;
}

}  // namespace dive::tools
