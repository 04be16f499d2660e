#include "cheatsheet/dropout.h"

#include <cmath>
#include <string>
#include <vector>

#include "datasets/fashion_mnist.h"
#include "datasets/testing/fashion_mnist_runfiles.h"
#include "gtest/gtest.h"
#include "tensor/tensor.h"

namespace dive::cheatsheet {
namespace {

TEST(DropoutTest, ExpectationIsUnchanged) {
  for (float p : {0.2f, 0.5f, 0.8f}) {
    const DropoutExpectation e = MeasureDropoutExpectation(p);
    ASSERT_EQ(e.mean_h_prime.size(), e.h.size());
    // h' is 0 or h / (1 - p), nothing else.
    EXPECT_EQ(e.other_values, 0) << "p=" << p;
    // A fraction p of the values is dropped: over 140,000 values the
    // standard deviation of the fraction is below 0.0014.
    EXPECT_NEAR(e.zero_fraction, p, 0.01f) << "p=" << p;
    // E[h'] = h: the standard deviation of the mean of 20,000 masks is
    // |h| sqrt(p / (1 - p)) / sqrt(20000) <= 0.0142 |h| (p = 0.8); allow
    // about 5 of them.
    for (size_t j = 0; j < e.h.size(); ++j) {
      const float sd = std::fabs(e.h[j]) * std::sqrt(p / (1 - p)) /
                       std::sqrt(static_cast<float>(e.masks));
      EXPECT_NEAR(e.mean_h_prime[j], e.h[j], 5 * sd + 1e-6f)
          << "p=" << p << " h=" << e.h[j];
    }
  }
}

TEST(DropoutTest, BooksArangeExample) {
  // p = 0 keeps X; p = 0.5 keeps each element doubled or zeroes it.
  const std::vector<float> x0 = DropoutOfArange(0.0f).ToVector();
  for (int i = 0; i < 16; ++i) EXPECT_EQ(x0[i], static_cast<float>(i));
  const std::vector<float> x5 = DropoutOfArange(0.5f).ToVector();
  int kept = 0;
  for (int i = 0; i < 16; ++i) {
    EXPECT_TRUE(x5[i] == 0.0f || x5[i] == 2.0f * i) << i << ": " << x5[i];
    kept += x5[i] != 0.0f;
  }
  EXPECT_GT(kept, 2);
  EXPECT_LT(kept, 14);
}

TEST(DropoutTest, OneEpochWithAndWithoutDropoutOnFashionMnist) {
  const std::string dir = data::testing::FashionMnistRunfilesDir();
  absl::StatusOr<data::InMemoryDataset> train =
      data::LoadFashionMnist(dir, data::Split::kTrain);
  absl::StatusOr<data::InMemoryDataset> test =
      data::LoadFashionMnist(dir, data::Split::kTest);
  ASSERT_TRUE(train.ok()) << train.status();
  ASSERT_TRUE(test.ok()) << test.status();
  // Small GEMMs: one thread is fastest while other tests share the cores.
  SetNumThreads(1);
  // The book's epoch (`bazel run //cheatsheet:dropout`) takes seconds, a
  // minute and more under the sanitizers' -O1: here 3,200 examples in
  // minibatches of 64 (50 steps at the book's lr 0.5) and 1,000 test
  // images.
  const DropoutComparison c = CompareDropout(
      *train, *test,
      {.batch_size = 64, .train_limit = 3200, .test_limit = 1000});
  EXPECT_EQ(c.train_examples, 3200);
  EXPECT_EQ(c.test_examples, 1000);
  EXPECT_EQ(c.without.dropout1, 0.0f);
  EXPECT_EQ(c.with.dropout2, 0.5f);
  for (const EpochResult& r : {c.without, c.with}) {
    ASSERT_EQ(r.batch_losses.size(), 50u);
    // Untrained, the loss is log 10 = 2.30 and the accuracy 0.1. (Measured:
    // the last ten minibatches average 1.66 without dropout and 1.94 with,
    // and test accuracy is 0.26 and 0.28.)
    EXPECT_NEAR(r.batch_losses.front(), std::log(10.0f), 0.01f);
    float last10 = 0;
    for (size_t i = 40; i < 50; ++i) last10 += r.batch_losses[i] / 10;
    EXPECT_LT(last10, 2.15f) << r.dropout1;
    EXPECT_LT(r.train_loss, 2.2f) << r.dropout1;
    EXPECT_GT(r.test_acc, 0.18f) << r.dropout1;
    // Evaluation mode drops nothing: the same accuracy twice.
    EXPECT_EQ(r.test_acc, r.test_acc_again) << r.dropout1;
  }
  // Same weights and minibatches, different masks: different models.
  EXPECT_NE(c.without.batch_losses.back(), c.with.batch_losses.back());
}

}  // namespace
}  // namespace dive::cheatsheet
