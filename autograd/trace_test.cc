#include "autograd/trace.h"

#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "gtest/gtest.h"
#include "tensor/random.h"

namespace dive::autograd {
namespace {

std::vector<std::string> OpNames(const TraceRecorder& recorder) {
  std::vector<std::string> names;
  for (const TracedOp& op : recorder.ops()) names.push_back(op.op);
  return names;
}

TEST(TraceTest, RecordsOpsInOrderWithTheirValues) {
  Variable x(Tensor::FromVector({1, -2, 3, -4}, {2, 2}));
  Variable w(Tensor::FromVector({1, 2, 3, 4}, {2, 2}), /*requires_grad=*/true);
  TraceRecorder recorder;
  Variable y = Relu(MatMul(x, w));
  Variable z = Flatten(y + x, 0, 1);
  ASSERT_EQ(OpNames(recorder),
            (std::vector<std::string>{"MatMul", "Relu", "Add", "Flatten"}));
  const auto& ops = recorder.ops();
  EXPECT_TRUE(SameValue(ops[0].inputs[0], x.data()));
  EXPECT_TRUE(SameValue(ops[0].inputs[1], w.data()));
  EXPECT_TRUE(SameValue(ops[1].inputs[0], ops[0].output));
  EXPECT_TRUE(SameValue(ops[2].inputs[0], y.data()));
  EXPECT_TRUE(SameValue(ops[3].output, z.data()));
  EXPECT_EQ(ops[3].ints.at("start"), std::vector<int64_t>{0});
  EXPECT_EQ(ops[3].ints.at("end"), std::vector<int64_t>{1});
}

TEST(TraceTest, RecordsWithoutGradients) {
  NoGradGuard no_grad;
  TraceRecorder recorder;
  Variable x(Tensor::Ones({1, 3, 4, 4}));
  Concat({x, x * 2.0f}, -3);
  ASSERT_EQ(OpNames(recorder),
            (std::vector<std::string>{"MulScalar", "Concat"}));
  EXPECT_EQ(recorder.ops()[0].floats.at("value"), 2.0f);
  EXPECT_EQ(recorder.ops()[1].ints.at("axis"), std::vector<int64_t>{1});
}

TEST(TraceTest, ConvolutionAndPoolingRecordTheirWindows) {
  Generator gen(1);
  Variable x(gen.Normal({1, 2, 6, 6}, 0.0f, 1.0f));
  Variable w(gen.Normal({3, 2, 3, 3}, 0.0f, 1.0f));
  TraceRecorder recorder;
  Variable y = Conv2d(x, w, Variable(), Conv2dParams{2, 2, 1, 1});
  MaxPool2d(y, Pool2dParams{2, 2, 1, 1, 0, 0});
  ASSERT_EQ(OpNames(recorder),
            (std::vector<std::string>{"Conv2d", "MaxPool2d"}));
  const TracedOp& conv = recorder.ops()[0];
  EXPECT_EQ(conv.ints.at("stride"), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(conv.ints.at("pad"), (std::vector<int64_t>{1, 1}));
  ASSERT_EQ(conv.inputs.size(), 3u);
  EXPECT_FALSE(conv.inputs[2].defined());  // no bias
  const TracedOp& pool = recorder.ops()[1];
  EXPECT_EQ(pool.ints.at("kernel"), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(pool.ints.at("stride"), (std::vector<int64_t>{1, 1}));
}

TEST(TraceTest, CompositesAreOneOp) {
  Generator gen(2);
  Variable x(gen.Normal({2, 3, 4, 4}, 0.0f, 1.0f));
  Variable gamma(Tensor::Ones({3}), true), beta(Tensor::Zeros({3}), true);
  Tensor mean = Tensor::Zeros({3}), var = Tensor::Ones({3});
  TraceRecorder recorder;
  Variable y = BatchNorm(x, gamma, beta, mean, var, /*training=*/false,
                         /*momentum=*/0.1f, /*eps=*/1e-3f);
  GlobalAvgPool2d(y);
  BatchNorm(x, gamma, beta, mean, var, /*training=*/true, 0.1f, 1e-3f);
  ASSERT_EQ(
      OpNames(recorder),
      (std::vector<std::string>{"BatchNorm", "GlobalAvgPool2d", "BatchNorm"}));
  const TracedOp& eval = recorder.ops()[0];
  ASSERT_EQ(eval.inputs.size(), 5u);
  EXPECT_TRUE(SameValue(eval.inputs[3], mean));
  EXPECT_TRUE(SameValue(eval.output, y.data()));
  EXPECT_EQ(eval.ints.at("training"), std::vector<int64_t>{0});
  EXPECT_EQ(eval.floats.at("eps"), 1e-3f);
  EXPECT_EQ(recorder.ops()[2].ints.at("training"), std::vector<int64_t>{1});
}

TEST(TraceTest, NothingIsRecordedOutsideARecorder) {
  Variable x(Tensor::Ones({2}));
  EXPECT_FALSE(Tracing());
  {
    TraceRecorder recorder;
    EXPECT_TRUE(Tracing());
  }
  EXPECT_FALSE(Tracing());
  Relu(x);
  EXPECT_EQ(LastTracedOp(), nullptr);
}

TEST(TraceTest, ViewsAreDistinctValues) {
  Tensor t = Tensor::Ones({2, 3});
  EXPECT_TRUE(SameValue(t, t.Reshape({2, 3})));
  EXPECT_FALSE(SameValue(t, t.Reshape({3, 2})));
  EXPECT_FALSE(SameValue(t, t.Transpose(0, 1).Transpose(0, 1).Slice(0, 0, 1)));
  EXPECT_FALSE(SameValue(t, t.Clone()));
  EXPECT_FALSE(SameValue(t, Tensor()));
}

TEST(TraceDeathTest, RecordersDoNotNest) {
  TraceRecorder recorder;
  EXPECT_DEATH(TraceRecorder inner, "already records");
}

}  // namespace
}  // namespace dive::autograd
