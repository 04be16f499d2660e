#include "train/evaluation.h"

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "autograd/variable.h"
#include "datasets/data_loader.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace dive::train {

absl::StatusOr<int64_t> CountPredictions(
    const Tensor& logits, const data::Batch& batch,
    std::vector<std::vector<int64_t>>* confusion) {
  const int64_t classes = logits.shape()[1];
  const int64_t* l = batch.labels.data<int64_t>();
  for (int64_t i = 0; i < batch.labels.numel(); ++i) {
    if (l[i] < 0 || l[i] >= classes) {
      return absl::InvalidArgumentError(
          absl::StrCat("example ", batch.indices[i], " has label ", l[i],
                       " but the model has ", classes, " outputs (labels 0..",
                       classes - 1, ")"));
    }
  }
  const Tensor pred = ops::Argmax(logits, 1);
  const int64_t* p = pred.data<int64_t>();
  if (confusion != nullptr && static_cast<int64_t>(confusion->size()) < classes) {
    confusion->resize(classes);
    for (std::vector<int64_t>& row : *confusion) row.resize(classes, 0);
  }
  int64_t correct = 0;
  for (int64_t i = 0; i < batch.labels.numel(); ++i) {
    correct += p[i] == l[i];
    if (confusion != nullptr) ++(*confusion)[l[i]][p[i]];
  }
  return correct;
}

absl::StatusOr<EvalResult> Evaluate(nn::Module& model, const data::Dataset& data,
                                    int64_t input_size, int64_t batch_size,
                                    int64_t limit) {
  data::DataLoaderOptions lo;
  lo.batch_size = batch_size;
  lo.sampler.shuffle = false;
  // A no-op for input_size x input_size images.
  lo.transforms.resize = input_size;
  absl::StatusOr<data::DataLoader> loader =
      data::DataLoader::Create(data::Head(data::Unowned(data), limit), lo);
  if (!loader.ok()) return loader.status();
  const bool was_training = model.is_training();
  const bool was_frozen = model.is_frozen();
  model.Fuse();
  model.Freeze();
  // The model as it came, whatever the return.
  absl::Cleanup restore = [&] {
    if (!was_frozen) model.Thaw();
    model.Train(was_training);
  };
  autograd::NoGradGuard no_grad;
  EvalResult result;
  int64_t correct = 0, total = 0;
  loader->StartEpoch(0);
  data::Batch batch;
  while (loader->Next(&batch)) {
    const Tensor logits = model(autograd::Variable(batch.images)).data();
    absl::StatusOr<int64_t> right =
        CountPredictions(logits, batch, &result.confusion);
    if (!right.ok()) return right.status();
    correct += *right;
    total += batch.labels.numel();
  }
  result.accuracy = total == 0 ? 0.0 : static_cast<double>(correct) / total;
  return result;
}

}  // namespace dive::train
