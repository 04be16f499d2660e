// Evaluate and CountPredictions: accuracy, the confusion matrix and labels
// the model cannot have predicted.

#include "train/evaluation.h"

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "datasets/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nn/flatten.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "tensor/tensor.h"

namespace dive::train {
namespace {

using ::testing::HasSubstr;

data::Batch BatchOf(std::vector<int64_t> labels) {
  data::Batch batch;
  const int64_t n = static_cast<int64_t>(labels.size());
  batch.labels = Tensor::FromInt64Vector(labels, {n});
  for (int64_t i = 0; i < n; ++i) batch.indices.push_back(10 + i);
  return batch;
}

TEST(CountPredictionsTest, CountsTheRightOnesAndFillsTheConfusionMatrix) {
  // Predictions 0, 1, 1 for labels 0, 0, 1.
  const Tensor logits = Tensor::FromVector({1, 0, 0, 1, 2, 3}, {3, 2});
  std::vector<std::vector<int64_t>> confusion;
  absl::StatusOr<int64_t> right =
      CountPredictions(logits, BatchOf({0, 0, 1}), &confusion);
  ASSERT_TRUE(right.ok()) << right.status();
  EXPECT_EQ(*right, 2);
  EXPECT_EQ(confusion, (std::vector<std::vector<int64_t>>{{1, 1}, {0, 1}}));
  EXPECT_EQ(*CountPredictions(logits, BatchOf({1, 1, 1})), 2);
}

TEST(CountPredictionsTest, ALabelBeyondTheOutputsNamesItsExample) {
  const Tensor logits = Tensor::FromVector({1, 0, 0, 1, 2, 3}, {3, 2});
  std::vector<std::vector<int64_t>> confusion;
  for (int64_t bad : {5, -1}) {
    const absl::Status s =
        CountPredictions(logits, BatchOf({0, 1, bad}), &confusion).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(),
              absl::StrCat("example 12 has label ", bad,
                           " but the model has 2 outputs (labels 0..1)"));
  }
  EXPECT_TRUE(confusion.empty());  // nothing counted
}

TEST(EvaluateTest, RefusesLabelsTheModelCannotPredictAndRestoresItsState) {
  // Four 1 x 2 x 2 images; a model of 3 outputs; the last label is 3.
  const data::InMemoryDataset data(std::vector<uint8_t>(16, 7), {0, 1, 2, 3},
                                   /*channels=*/1, /*height=*/2, /*width=*/2);
  nn::Sequential model({std::make_shared<nn::Flatten>(),
                        std::make_shared<nn::Linear>(4, 3)});
  const absl::Status s =
      Evaluate(model, data, /*input_size=*/2, /*batch_size=*/4).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("example 3 has label 3 but the model has 3 outputs"));
  EXPECT_TRUE(model.is_training());
  // The first three fit: a whole 3 x 3 matrix over 3 examples.
  absl::StatusOr<EvalResult> first = Evaluate(model, data, 2, 4, /*limit=*/3);
  ASSERT_TRUE(first.ok()) << first.status();
  int64_t counted = 0;
  for (const auto& row : first->confusion) {
    ASSERT_EQ(row.size(), 3u);
    for (int64_t c : row) counted += c;
  }
  EXPECT_EQ(counted, 3);
  EXPECT_TRUE(model.is_training() && !model.is_frozen());
  // A model in evaluation stays there, frozen or not, as it came.
  model.Eval();
  ASSERT_TRUE(Evaluate(model, data, 2, 4, 3).ok());
  EXPECT_TRUE(!model.is_training() && !model.is_frozen());
  model.Freeze();
  ASSERT_TRUE(Evaluate(model, data, 2, 4, 3).ok());
  EXPECT_TRUE(!model.is_training() && model.is_frozen());
}

}  // namespace
}  // namespace dive::train
