#include "train/replicas.h"

#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace dive::train {
namespace {

absl::Status BroadcastBuffers(distributed::ProcessGroup& group,
                              const nn::Module& model) {
  std::vector<Tensor> buffers;
  for (const auto& [name, buffer] : model.NamedBuffers()) {
    buffers.push_back(buffer);
  }
  return distributed::BroadcastTensors(group, buffers, /*root=*/0);
}

}  // namespace

absl::Status SyncReplicas(distributed::ProcessGroup& group,
                          distributed::DistributedDataParallel& ddp,
                          TrainState& state) {
  if (group.size() == 1) return absl::OkStatus();
  if (absl::Status s = ddp.BroadcastParameters(/*root=*/0); !s.ok()) return s;
  if (absl::Status s = BroadcastBuffers(group, *state.model); !s.ok()) return s;
  std::string bytes = group.rank() == 0 ? EncodeTrainState(state, 0) : "";
  uint64_t n = bytes.size();
  if (absl::Status s = group.BroadcastBytes(&n, sizeof(n), /*root=*/0);
      !s.ok()) {
    return s;
  }
  bytes.resize(n);
  if (absl::Status s = group.BroadcastBytes(bytes.data(), n, /*root=*/0);
      !s.ok()) {
    return s;
  }
  if (group.rank() == 0) return absl::OkStatus();
  absl::StatusOr<SavedTrainState> saved =
      DecodeTrainState(bytes, "rank 0's training state");
  if (!saved.ok()) return saved.status();
  return RestoreTrainState(*saved, state);
}

absl::StatusOr<EvalResult> EvaluateAcrossRanks(
    distributed::ProcessGroup& group, nn::Module& model,
    const data::Dataset& data, int64_t input_size, int64_t batch_size,
    int64_t limit) {
  if (group.size() == 1) {
    return Evaluate(model, data, input_size, batch_size, limit);
  }
  if (absl::Status s = BroadcastBuffers(group, model); !s.ok()) return s;
  const std::shared_ptr<const data::Dataset> all =
      data::Head(data::Unowned(data), limit);
  const int64_t n = all->size();
  const int64_t begin = n * group.rank() / group.size();
  const int64_t end = n * (group.rank() + 1) / group.size();
  absl::StatusOr<EvalResult> mine =
      Evaluate(model, data::SubsetDataset(all, begin, end), input_size,
               batch_size);
  if (!mine.ok()) return mine.status();
  // The model's classes, from the ranks that evaluated anything (a rank
  // with no examples has an empty matrix).
  double classes[2] = {static_cast<double>(mine->confusion.size()),
                       mine->confusion.empty() ? 0.0 : 1.0};
  if (absl::Status s = group.AllReduceSum(classes, 2); !s.ok()) return s;
  const size_t k =
      classes[1] == 0 ? 0 : static_cast<size_t>(classes[0] / classes[1]);
  // The confusion matrices summed over the ranks; the accuracy follows.
  std::vector<double> counts(k * k + 1, 0.0);
  for (size_t i = 0; i < mine->confusion.size(); ++i) {
    for (size_t j = 0; j < k; ++j) counts[i * k + j] = mine->confusion[i][j];
  }
  counts.back() = static_cast<double>(end - begin);
  if (absl::Status s = group.AllReduceSum(counts.data(), counts.size());
      !s.ok()) {
    return s;
  }
  EvalResult result;
  double correct = 0;
  for (size_t i = 0; i < k; ++i) {
    result.confusion.emplace_back(counts.begin() + i * k,
                                  counts.begin() + (i + 1) * k);
    correct += counts[i * k + i];
  }
  result.accuracy = counts.back() == 0 ? 0.0 : correct / counts.back();
  return result;
}

}  // namespace dive::train
