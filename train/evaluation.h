// File: train/evaluation.h
// -----------------------------------------------------------------------------
//
// `Evaluate`: a model's accuracy and confusion matrix on a dataset, in eval
// mode and without recording gradients, as the trainer reports it after
// each epoch and //tools:eval prints it for a saved checkpoint.
//
// Example:
//
//   absl::StatusOr<EvalResult> r =
//       Evaluate(model, test, /*input_size=*/28, /*batch_size=*/256);
//   if (r.ok()) std::printf("test acc %.4f\n", r->accuracy);

#ifndef TRAIN_EVALUATION_H_
#define TRAIN_EVALUATION_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "datasets/dataset.h"
#include "nn/module.h"
#include "tensor/tensor.h"

namespace dive::train {

struct EvalResult {
  double accuracy = 0;
  // confusion[true_label][predicted_label], one row and column per output
  // of the model.
  std::vector<std::vector<int64_t>> confusion;
};

// CountPredictions()
//
// The predictions (argmax) of `logits` [B, K] for `batch`'s labels: returns
// how many are right and, when `confusion` is given, adds each to
// (*confusion)[label][prediction] (grown to K x K first). InvalidArgument
// "example <i> has label <l> but the model has K outputs (labels 0..K-1)"
// for a label outside them, and then nothing is counted.
absl::StatusOr<int64_t> CountPredictions(
    const Tensor& logits, const data::Batch& batch,
    std::vector<std::vector<int64_t>>* confusion = nullptr);

// Accuracy and confusion matrix of `model` on the first `limit` examples of
// `data` (0: all), resized to input_size x input_size. The model is fused
// (nn::Module::Fuse: BatchNorm folded into convolutions, ReLU in their
// output pass), which leaves its training unchanged, and frozen for the
// evaluation (nn::Module::Freeze: the weights prepared once, not at every
// batch); its mode and frozen state are restored afterwards.
// InvalidArgument for data the model cannot classify: a label outside its
// outputs, images the loader cannot resize.
absl::StatusOr<EvalResult> Evaluate(nn::Module& model, const data::Dataset& data,
                                    int64_t input_size, int64_t batch_size,
                                    int64_t limit = 0);

}  // namespace dive::train

#endif  // TRAIN_EVALUATION_H_
