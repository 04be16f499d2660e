#include "bench/model_bench.h"

#include <sys/resource.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "autograd/variable.h"
#include "tensor/random.h"

namespace dive::bench {

BenchSetting DefaultBenchSetting(const models::ModelSpec& spec) {
  // Chosen so that a training step takes well under 2 s on two cores.
  static const auto* const kSettings = new std::map<std::string, BenchSetting>{
      {"alexnet", {64, 96}},   {"nin", {64, 96}},    {"vgg", {64, 96}},
      {"googlenet", {32, 96}}, {"resnet", {32, 96}}, {"densenet", {32, 96}},
  };
  auto it = kSettings->find(spec.name);
  if (it != kSettings->end()) return it->second;
  return {spec.recipe.batch_size, spec.recipe.input_size};
}

absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Create(
    const models::ModelSpec& spec, const BenchSetting& setting, uint64_t seed) {
  if (setting.batch_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch size must be positive, got ", setting.batch_size));
  }
  ManualSeed(seed);
  absl::StatusOr<std::shared_ptr<nn::Module>> model =
      spec.make(setting.input_size);
  if (!model.ok()) return model.status();
  (*model)->Fuse();
  Generator gen(seed + 1);
  Tensor images = gen.Uniform(
      {setting.batch_size, 1, setting.input_size, setting.input_size}, 0, 1);
  std::vector<int64_t> labels(setting.batch_size);
  for (int64_t& l : labels) l = gen.NextIndex(10);
  return std::unique_ptr<ModelRunner>(new ModelRunner(
      *std::move(model), setting, spec.recipe.lr, std::move(images),
      Tensor::FromInt64Vector(labels, {setting.batch_size})));
}

ModelRunner::ModelRunner(std::shared_ptr<nn::Module> model,
                         const BenchSetting& setting, float lr, Tensor images,
                         Tensor labels)
    : model_(std::move(model)),
      setting_(setting),
      sgd_(model_->Parameters(), optim::SGDOptions{.lr = lr}),
      images_(std::move(images)),
      labels_(std::move(labels)) {}

float ModelRunner::TrainStep() {
  model_->Train();
  autograd::Variable logits = (*model_)(autograd::Variable(images_));
  autograd::Variable loss = SoftmaxCrossEntropy(logits, labels_);
  const float l = loss.data().item();
  sgd_.ZeroGrad();
  loss.Backward();
  sgd_.Step();
  return l;
}

Tensor ModelRunner::Infer() {
  if (!model_->is_frozen()) model_->Freeze();
  autograd::NoGradGuard no_grad;
  return (*model_)(autograd::Variable(images_)).data();
}

int64_t PeakRssBytes() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // KiB on Linux
}

}  // namespace dive::bench
