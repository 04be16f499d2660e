#include "tools/training.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "autograd/functions.h"
#include "datasets/data_loader.h"
#include "glog/logging.h"
#include "optim/sgd.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tools/plot.h"

namespace dive::tools {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// The first n examples (all when n is 0 or larger than the data).
InMemoryDataset Head(const InMemoryDataset& data, int64_t n) {
  if (n <= 0 || n >= data.size()) return data;
  const uint8_t* first = data.image_bytes(0);
  std::vector<uint8_t> images(first, first + n * data.image_size());
  std::vector<int64_t> labels(data.labels().begin(),
                              data.labels().begin() + n);
  return InMemoryDataset(std::move(images), std::move(labels), data.channels(),
                         data.height(), data.width());
}

int64_t CountCorrect(const Tensor& logits, const Tensor& labels) {
  const Tensor pred = ops::Argmax(logits, 1);
  const int64_t* p = pred.data<int64_t>();
  const int64_t* l = labels.data<int64_t>();
  int64_t correct = 0;
  for (int64_t i = 0; i < labels.numel(); ++i) correct += p[i] == l[i];
  return correct;
}

// One line that redraws itself on a terminal.
class Progress {
 public:
  Progress(bool enabled, int64_t total, int64_t log_every)
      : tty_(enabled && isatty(STDERR_FILENO)),
        enabled_(enabled),
        total_(total),
        log_every_(log_every) {}

  void Update(int64_t step, int64_t examples, double loss, double seconds) {
    if (!enabled_) return;
    const double rate = examples / std::max(seconds, 1e-9);
    const double eta = (total_ - step) * seconds / std::max<int64_t>(step, 1);
    if (tty_) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(kWidth * step / std::max<int64_t>(total_, 1));
      std::fprintf(stderr, "\r  [%s%s] %ld/%ld  loss %.4f  %.0f ex/s  ETA %.0fs ",
                   std::string(filled, '#').c_str(),
                   std::string(kWidth - filled, '.').c_str(), step, total_,
                   loss, rate, eta);
      std::fflush(stderr);
    } else if (step % log_every_ == 0 || step == total_) {
      LOG(INFO) << absl::StrFormat("step %d/%d  loss %.4f  %.0f examples/s", step,
                                   total_, loss, rate);
    }
  }

  void Finish() {
    if (tty_) std::fprintf(stderr, "\r%*s\r", 100, "");
  }

 private:
  const bool tty_, enabled_;
  const int64_t total_, log_every_;
};

absl::Status AppendCsv(const std::string& path, const EpochMetrics& m,
                       bool header) {
  std::ofstream out(path, header ? std::ios::trunc : std::ios::app);
  if (header) {
    out << "epoch,loss,train_acc,test_acc,seconds,examples_per_sec\n";
  }
  out << absl::StrFormat("%d,%.6f,%.6f,%.6f,%.3f,%.1f\n", m.epoch, m.loss,
                         m.train_acc, m.test_acc, m.seconds,
                         m.examples_per_sec);
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::Status SaveCheckpoint(const std::string& path, const nn::Module& model,
                            const std::string& model_name, int64_t epoch,
                            int64_t input_size) {
  SafetensorsFile file;
  file.tensors = model.StateDict();
  file.metadata["model"] = model_name;
  file.metadata["epoch"] = absl::StrCat(epoch);
  file.metadata["input_size"] = absl::StrCat(input_size);
  return SaveSafetensors(path, file);
}

}  // namespace

absl::Status ValidateOptions(const TrainOptions& o) {
  auto bad = [](absl::string_view flag, auto value, absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", value, ": ", why));
  };
  if (o.epochs <= 0) return bad("epochs", o.epochs, "must be positive");
  if (!(o.lr > 0) || !std::isfinite(o.lr)) {
    return bad("lr", o.lr, "must be a positive number");
  }
  if (o.batch_size <= 0) return bad("batch_size", o.batch_size, "must be positive");
  if (o.input_size <= 0) return bad("resize", o.input_size, "must be positive");
  if (o.weight_decay < 0 || !std::isfinite(o.weight_decay)) {
    return bad("weight_decay", o.weight_decay, "must be >= 0");
  }
  if (o.momentum < 0 || o.momentum >= 1) {
    return bad("momentum", o.momentum, "must be in [0, 1)");
  }
  if (o.threads < 0) return bad("threads", o.threads, "must be >= 0");
  if (o.train_limit < 0) return bad("train_limit", o.train_limit, "must be >= 0");
  if (o.test_limit < 0) return bad("test_limit", o.test_limit, "must be >= 0");
  if (o.resume && o.out_dir.empty()) {
    return absl::InvalidArgumentError("--resume needs --out (the run to resume)");
  }
  if (!o.out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.out_dir, ec);
    if (ec || access(o.out_dir.c_str(), W_OK) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--out=", o.out_dir, ": cannot create or write the directory",
          ec ? absl::StrCat(" (", ec.message(), ")") : ""));
    }
  }
  return absl::OkStatus();
}

absl::Status LoadCheckpoint(const std::string& path, nn::Module& model,
                            int64_t* epoch) {
  absl::StatusOr<SafetensorsFile> file = LoadSafetensors(path);
  if (!file.ok()) return file.status();
  if (absl::Status s = model.LoadStateDict(file->tensors); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", path, " does not fit the model: ", s.message()));
  }
  if (epoch != nullptr) {
    *epoch = 0;
    auto it = file->metadata.find("epoch");
    if (it != file->metadata.end() && !absl::SimpleAtoi(it->second, epoch)) {
      return absl::DataLossError(absl::StrCat(path, ": bad epoch in metadata"));
    }
  }
  return absl::OkStatus();
}

EvalResult Evaluate(nn::Module& model, const InMemoryDataset& data,
                    int64_t input_size, int64_t batch_size, int64_t limit) {
  const InMemoryDataset subset = Head(data, limit);
  DataLoaderOptions lo;
  lo.batch_size = batch_size;
  lo.shuffle = false;
  lo.resize = input_size == subset.height() ? 0 : input_size;
  absl::StatusOr<DataLoader> loader = DataLoader::Create(subset, lo);
  CHECK(loader.ok()) << loader.status();
  const bool was_training = model.is_training();
  model.Eval();
  NoGradGuard no_grad;
  EvalResult result;
  result.confusion.assign(10, std::vector<int64_t>(10, 0));
  int64_t correct = 0, total = 0;
  loader->StartEpoch(0);
  Batch batch;
  while (loader->Next(&batch)) {
    const Tensor logits = model(Variable(batch.images)).data();
    const Tensor pred = ops::Argmax(logits, 1);
    const int64_t* p = pred.data<int64_t>();
    const int64_t* l = batch.labels.data<int64_t>();
    for (int64_t i = 0; i < batch.labels.numel(); ++i) {
      correct += p[i] == l[i];
      if (l[i] < 10 && p[i] < 10) ++result.confusion[l[i]][p[i]];
    }
    total += batch.labels.numel();
  }
  model.Train(was_training);
  result.accuracy = total == 0 ? 0.0 : static_cast<double>(correct) / total;
  return result;
}

absl::StatusOr<TrainSummary> Train(const models::ModelSpec& spec,
                                   const TrainOptions& options,
                                   const InMemoryDataset& train_data,
                                   const InMemoryDataset& test_data) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  SetNumThreads(options.threads);
  ManualSeed(options.seed);
  absl::StatusOr<std::shared_ptr<nn::Module>> made = spec.make(options.input_size);
  if (!made.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--resize=", options.input_size, ": ", made.status().message()));
  }
  nn::Module& model = **made;

  const std::string checkpoint =
      options.out_dir.empty() ? "" : options.out_dir + "/model.safetensors";
  const std::string csv = options.out_dir + "/metrics.csv";
  int64_t start_epoch = 0;
  if (options.resume) {
    if (absl::Status s = LoadCheckpoint(checkpoint, model, &start_epoch);
        !s.ok()) {
      return s;
    }
    LOG(INFO) << "resuming " << spec.name << " from " << checkpoint
              << " after epoch " << start_epoch;
  }

  optim::SGDOptions so;
  so.lr = options.lr;
  so.momentum = options.momentum;
  so.weight_decay = options.weight_decay;
  optim::SGD sgd(model.Parameters(), so);

  const InMemoryDataset train = Head(train_data, options.train_limit);
  DataLoaderOptions lo;
  lo.batch_size = options.batch_size;
  lo.shuffle = true;
  lo.seed = options.seed;
  lo.resize = options.input_size == train.height() ? 0 : options.input_size;
  // The loader prepares batches on its own thread while the model computes
  // on all cores; one thread for its transforms avoids oversubscription.
  lo.num_threads = 1;
  absl::StatusOr<DataLoader> loader = DataLoader::Create(train, lo);
  if (!loader.ok()) return loader.status();

  TrainSummary summary;
  int64_t last_good_epoch = start_epoch;
  for (int64_t epoch = start_epoch + 1; epoch <= options.epochs; ++epoch) {
    model.Train();
    Progress progress(options.progress, loader->num_batches(), options.log_every);
    const Clock::time_point start = Clock::now();
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, step = 0;
    loader->StartEpoch(epoch - 1);
    Batch batch;
    while (loader->Next(&batch)) {
      ++step;
      Variable logits = model(Variable(batch.images));
      Variable loss = SoftmaxCrossEntropy(logits, batch.labels);
      const float l = loss.data().item();
      if (!std::isfinite(l)) {
        if (options.skip_nonfinite) {
          ++summary.skipped_steps;
          LOG(WARNING) << "epoch " << epoch << " step " << step << ": loss is "
                       << l << ", step skipped (--skip_nonfinite)";
          continue;
        }
        progress.Finish();
        return absl::AbortedError(absl::StrCat(
            "training diverged: loss is ", l, " at epoch ", epoch, " step ",
            step, "; last good checkpoint: ",
            checkpoint.empty() || last_good_epoch == 0
                ? std::string("none")
                : absl::StrCat(checkpoint, " (epoch ", last_good_epoch, ")"),
            ". Lower --lr, or pass --skip_nonfinite to skip such steps"));
      }
      sgd.ZeroGrad();
      loss.Backward();
      sgd.Step();
      const int64_t n = batch.labels.numel();
      loss_sum += static_cast<double>(l) * n;
      correct += CountCorrect(logits.data(), batch.labels);
      seen += n;
      progress.Update(step, seen, loss_sum / seen, Seconds(start));
    }
    progress.Finish();
    EpochMetrics m;
    m.epoch = epoch;
    m.seconds = Seconds(start);
    m.loss = seen == 0 ? 0 : loss_sum / seen;
    m.train_acc = seen == 0 ? 0 : static_cast<double>(correct) / seen;
    m.examples_per_sec = seen / std::max(m.seconds, 1e-9);
    m.test_acc = Evaluate(model, test_data, options.input_size,
                          options.batch_size, options.test_limit)
                     .accuracy;
    std::printf("epoch %ld: loss %.3f, train acc %.3f, test acc %.3f, %.1f examples/sec\n",
                m.epoch, m.loss, m.train_acc, m.test_acc, m.examples_per_sec);
    std::fflush(stdout);
    summary.epochs.push_back(m);

    if (!options.out_dir.empty()) {
      if (absl::Status s = SaveCheckpoint(checkpoint, model, spec.name, epoch,
                                          options.input_size);
          !s.ok()) {
        return s;
      }
      last_good_epoch = epoch;
      const bool fresh = epoch == 1 || (!options.resume && epoch == start_epoch + 1);
      if (absl::Status s = AppendCsv(csv, m, fresh); !s.ok()) return s;
      if (absl::Status s = PlotMetrics(csv, options.out_dir + "/metrics.png",
                                       spec.description);
          !s.ok()) {
        LOG(WARNING) << "no plot: " << s;
      }
    }
  }
  return summary;
}

}  // namespace dive::tools
