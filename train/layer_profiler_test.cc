// LayerProfiler: which modules it reports and in what order, that it sees
// forward and backward time, that its activation statistics are the
// outputs' own, that it changes nothing in training and leaves no hook
// behind.

#include "train/layer_profiler.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "datasets/testing/fake_data.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/lenet/lenet.h"
#include "nn/activation.h"
#include "nn/containers.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "nn/sequential.h"
#include "tensor/gemm.h"
#include "tensor/random.h"
#include "train/testing/small_runs.h"
#include "train/training.h"

namespace dive::train {
namespace {

using ::testing::HasSubstr;

// One epoch of the shared small run, in batches of 64, into a fresh
// directory named `name`.
TrainOptions OneEpoch(const std::string& name) {
  TrainOptions o = testing::SmallRun(testing::FreshDir(name));
  o.epochs = 1;
  o.batch_size = 64;
  o.seed = 3;
  return o;
}

// One training step of `model` on `x`, as the loop runs it: forward, a
// scalar loss, backward, then the observer calls.
void Step(nn::Module& model, LayerProfiler& profiler, const Tensor& x) {
  autograd::Variable loss =
      Sum(model(autograd::Variable(x, /*requires_grad=*/true)));
  loss.Backward();
  profiler.OnAfterBackward(TrainState{});
  ASSERT_TRUE(profiler.OnStep(TrainState{}, StepInfo{}).ok());
}

TEST(LayerProfilerTest, ReportsEveryModuleOfLeNetInCallOrderWithTimes) {
  ManualSeed(1);
  absl::StatusOr<std::shared_ptr<nn::Module>> model =
      models::LeNetSpec().make(28);
  ASSERT_TRUE(model.ok()) << model.status();
  LayerProfiler profiler(**model, /*stats_every=*/1);
  TrainOptions o = OneEpoch("lenet");
  o.observers.push_back(&profiler);
  const data::InMemoryDataset train = data::testing::FakeImages(256, 1);
  const data::InMemoryDataset test = data::testing::FakeImages(64, 2);
  ASSERT_TRUE(Train(models::LeNetSpec(), **model, o, train, test).ok());

  EXPECT_EQ(profiler.steps(), 4);  // 256 / 64; evaluation does not count
  const std::vector<LayerStats> layers = profiler.Layers();
  // The Sequential, then its children in order: the pre-order of the calls.
  ASSERT_EQ(layers.size(), 1 + (*model)->children().size());
  EXPECT_EQ(layers[0].name, "");
  EXPECT_EQ(layers[0].depth, 0);
  for (size_t i = 1; i < layers.size(); ++i) {
    EXPECT_EQ(layers[i].name, (*model)->children()[i - 1].first);
    EXPECT_EQ(layers[i].description,
              (*model)->children()[i - 1].second->Describe());
    EXPECT_EQ(layers[i].depth, 1);
  }
  double children_forward = 0;
  for (const LayerStats& layer : layers) {
    EXPECT_EQ(layer.calls, 4) << layer.name;
    EXPECT_GT(layer.forward_seconds, 0) << layer.name;
    EXPECT_TRUE(layer.sampled) << layer.name;
    if (layer.depth == 1) children_forward += layer.forward_seconds;
  }
  // The model's forward holds its children's, and its backward the
  // execution time of every node its layers created.
  EXPECT_GE(layers[0].forward_seconds, children_forward);
  EXPECT_GT(layers[0].backward_seconds, 0);
  EXPECT_GT(layers[1].backward_seconds, 0);  // the first Conv2d
  EXPECT_GE(profiler.step_seconds(),
            layers[0].forward_seconds + layers[0].backward_seconds);

  const std::string table = profiler.Table();
  EXPECT_THAT(table, HasSubstr("Per-layer time over 4 training steps"));
  EXPECT_THAT(table, HasSubstr("Fwd ms"));
  // The first Conv2d (1 -> 6, 5 x 5, 28 x 28 out): 2 x 117,600 FLOPs for
  // each of the 256 images; the model itself counts none of its own.
  EXPECT_EQ(layers[1].forward_flops, 256 * 2 * 117'600);
  // The model's counts are its layers' (it has none of its own).
  int64_t children_flops = 0;
  for (const LayerStats& layer : layers) {
    if (layer.depth == 1) children_flops += layer.forward_flops;
  }
  EXPECT_EQ(layers[0].forward_flops, children_flops);
  // The first layer's input wants no gradient: its backward is the
  // weight's alone, as many FLOPs as its forward.
  EXPECT_EQ(layers[1].backward_flops, layers[1].forward_flops);
  EXPECT_THAT(table, HasSubstr("Fwd GF/s"));
  EXPECT_THAT(table, HasSubstr("FLOP/B"));
  // Measured in this process on first use.
  EXPECT_GT(profiler.roofline().peak_flops, 0);
  EXPECT_GT(profiler.roofline().bandwidth, 0);
  EXPECT_THAT(table, HasSubstr("0 Conv2d(1, 6, kernel=5x5"));  // cut at 50
  EXPECT_THAT(table, HasSubstr("(loss, optimizer, observers)"));
}

TEST(LayerProfilerTest, StatisticsAreThoseOfTheOutputs) {
  // x W^T has known signs: ReLU zeros exactly the negative half; a large
  // weight saturates the Sigmoid.
  auto model = std::make_shared<nn::Sequential>();
  auto fc = model->Add(std::make_shared<nn::Linear>(1, 4, /*bias=*/false));
  auto relu = model->Add(std::make_shared<nn::ReLU>());
  auto fc2 = model->Add(std::make_shared<nn::Linear>(4, 1, /*bias=*/false));
  model->Add(std::make_shared<nn::Sigmoid>());
  Tensor w1 = fc->Parameters()[0].data();  // shares the storage
  w1.CopyFrom(Tensor::FromVector({1, -1, 2, -2}, Shape{4, 1}));
  Tensor w2 = fc2->Parameters()[0].data();
  w2.CopyFrom(Tensor::FromVector({10, 10, 10, 10}, Shape{1, 4}));
  LayerProfiler profiler(*model, /*stats_every=*/1);
  // Inputs 1, -1, 0.01: ReLU outputs (1,0,2,0), (0,1,0,2), (.01,0,.02,0).
  Step(*model, profiler, Tensor::FromVector({1, -1, 0.01f}, Shape{3, 1}));

  const std::vector<LayerStats> layers = profiler.Layers();
  ASSERT_EQ(layers.size(), 5u);
  const LayerStats& r = layers[2];
  EXPECT_EQ(r.description, "ReLU");
  EXPECT_EQ(r.unit_stat, UnitStat::kZero);
  EXPECT_DOUBLE_EQ(r.unit_fraction, 6.0 / 12);
  const double mean = (3 + 3 + 0.03) / 12;
  EXPECT_NEAR(r.mean, mean, 1e-7);
  const double sq = (1 + 4 + 1 + 4 + 1e-4 + 4e-4) / 12;
  EXPECT_NEAR(r.stddev, std::sqrt(sq - mean * mean), 1e-6);
  // Sigmoid of 30, 30 and 0.3: two saturated of three.
  const LayerStats& s = layers[4];
  EXPECT_EQ(s.unit_stat, UnitStat::kSaturated);
  EXPECT_DOUBLE_EQ(s.unit_fraction, 2.0 / 3);
  // The first Linear's outputs x * (1, -1, 2, -2) sum to zero.
  EXPECT_EQ(layers[1].unit_stat, UnitStat::kNone);
  EXPECT_NEAR(layers[1].mean, 0, 1e-7);
}

// A convolution feeding another stores its output in bf16 under bf16
// matmuls (nn::Conv2d::set_feeds_convolution): its statistics are those of
// the values, as in float32.
TEST(LayerProfilerTest, StatisticsOfBfloat16Outputs) {
  auto model = std::make_shared<nn::Sequential>();
  auto conv1 = model->Add(std::make_shared<nn::Conv2d>(1, 2, 1, 1, 0, false));
  model->Add(std::make_shared<nn::ReLU>());
  model->Add(std::make_shared<nn::Conv2d>(2, 1, 1, 1, 0, false));
  Tensor w1 = conv1->Parameters()[0].data();  // shares the storage
  w1.CopyFrom(Tensor::FromVector({1, -2}, Shape{2, 1, 1, 1}));
  model->Fuse();
  LayerProfiler profiler(*model, /*stats_every=*/1);
  {
    const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
    // conv1 + ReLU: (1, 3) and (-2, -6) -> (1, 3, 0, 0), exact in bf16.
    Step(*model, profiler, Tensor::FromVector({1, 3}, Shape{1, 1, 1, 2}));
  }
  const std::vector<LayerStats> layers = profiler.Layers();
  ASSERT_GE(layers.size(), 2u);
  const LayerStats& c = layers[1];
  EXPECT_EQ(c.description.rfind("Conv2d(1, 2", 0), 0u) << c.description;
  EXPECT_TRUE(c.sampled);
  EXPECT_DOUBLE_EQ(c.mean, 1.0);
  EXPECT_NEAR(c.stddev, std::sqrt(1.5), 1e-12);
}

TEST(LayerProfilerTest, SamplesOnlyEveryNthStepAndIgnoresEvaluation) {
  auto model = std::make_shared<nn::Sequential>();
  model->Add(std::make_shared<nn::ReLU>());
  LayerProfiler profiler(*model, /*stats_every=*/2);
  const Tensor x = Tensor::FromVector({-1, 1}, Shape{1, 2});
  autograd::Variable input(x, /*requires_grad=*/true);
  model->Eval();
  (*model)(input);  // evaluation mode: not a training step
  EXPECT_TRUE(profiler.Layers().empty());
  model->Train();
  Step(*model, profiler, x);  // step 0: sampled
  ASSERT_EQ(profiler.Layers().size(), 2u);
  EXPECT_TRUE(profiler.Layers()[1].sampled);
  EXPECT_DOUBLE_EQ(profiler.Layers()[1].unit_fraction, 0.5);
  Step(*model, profiler, Tensor::FromVector({-1, -1}, Shape{1, 2}));
  EXPECT_DOUBLE_EQ(profiler.Layers()[1].unit_fraction, 0.5);  // not sampled
  Step(*model, profiler, Tensor::FromVector({-1, -1}, Shape{1, 2}));
  EXPECT_DOUBLE_EQ(profiler.Layers()[1].unit_fraction, 1.0);  // step 2
  EXPECT_EQ(profiler.steps(), 3);
}

// A residual block whose 1x1 shortcut reads the same input as its main
// path: each convolution's backward is charged to itself (the engine's
// nodes, counted exactly), and the FLOP and byte counts are the layers'.
TEST(LayerProfilerTest, ChargesEachBranchOfAResidualBlockItsOwnBackward) {
  ManualSeed(5);
  auto body = std::make_shared<nn::Sequential>();
  auto conv1 = body->Add(std::make_shared<nn::Conv2d>(2, 4, 3, 1, 1));
  body->Add(std::make_shared<nn::ReLU>());
  body->Add(std::make_shared<nn::Conv2d>(4, 4, 3, 1, 1));
  auto shortcut = std::make_shared<nn::Conv2d>(2, 4, 1);
  nn::Residual block(body, shortcut);
  LayerProfiler profiler(block);
  profiler.SetRoofline({.peak_kind = "fma",
                        .threads = 1,
                        .peak_flops = 100e9,
                        .bandwidth = 100e9,
                        .cpu = "Test CPU"});
  const Tensor x = Normal(Shape{2, 2, 5, 5}, 0, 1);
  Step(block, profiler, x);
  Step(block, profiler, x);

  const std::vector<LayerStats> layers = profiler.Layers();
  // Residual, body (Sequential), its Conv2d, ReLU, Conv2d, then the
  // shortcut: the order of the calls.
  ASSERT_EQ(layers.size(), 6u);
  EXPECT_EQ(layers[0].description, "Residual");
  EXPECT_EQ(layers[5].description, shortcut->Describe());
  EXPECT_EQ(layers[5].depth, 1);
  EXPECT_EQ(layers[5].parent, 0);
  EXPECT_EQ(layers[2].parent, 1);
  // Two steps: each convolution ran its one node twice, the ReLU its one,
  // the block its Add; the Sequential created none.
  EXPECT_EQ(layers[0].backward_nodes, 2);  // Add
  EXPECT_EQ(layers[1].backward_nodes, 0);
  EXPECT_EQ(layers[2].backward_nodes, 2);
  EXPECT_EQ(layers[3].backward_nodes, 2);
  EXPECT_EQ(layers[4].backward_nodes, 2);
  EXPECT_EQ(layers[5].backward_nodes, 2);
  for (const LayerStats& layer : layers) {
    if (layer.backward_nodes > 0) EXPECT_GT(layer.backward_seconds, 0);
  }
  // Backward times nest: the block's is its children's plus its own Add.
  EXPECT_GE(layers[0].backward_seconds,
            layers[1].backward_seconds + layers[5].backward_seconds - 1e-12);
  EXPECT_NEAR(layers[1].backward_seconds,
              layers[2].backward_seconds + layers[3].backward_seconds +
                  layers[4].backward_seconds,
              1e-9);

  // The shortcut, Conv2d(2, 4, 1) on [2, 2, 5, 5] -> [2, 4, 5, 5]: per call
  // F = 2 x 200 outputs x 2 taps = 800; backward 2F (the input wants a
  // gradient); bytes n = 100, m = 200, W = 8, b = 4 at 4 bytes.
  EXPECT_EQ(layers[5].forward_flops, 2 * 800);
  EXPECT_EQ(layers[5].backward_flops, 2 * 1600);
  EXPECT_EQ(layers[5].forward_bytes, 2 * 4 * (100 + 200 + 12));
  EXPECT_EQ(layers[5].backward_bytes, 2 * 4 * (200 + 100 + 12 + 8 + 100));
  // conv1, Conv2d(2, 4, 3, padding 1): F = 2 x 200 x 18 = 7200.
  EXPECT_EQ(layers[2].forward_flops, 2 * 7200);
  EXPECT_EQ(conv1->Describe(), layers[2].description);
  // Containers count their layers'.
  EXPECT_EQ(layers[0].forward_flops,
            layers[1].forward_flops + layers[5].forward_flops);
  EXPECT_EQ(layers[0].backward_bytes,
            layers[1].backward_bytes + layers[5].backward_bytes);

  // On a roofline with its ridge at 1 FLOP/byte the shortcut (2400 FLOPs
  // per 2928 bytes) is memory-bound and conv1 (21600 per 3696) is not.
  const LayerRoofline s = RooflineOf(layers[5], profiler.roofline());
  EXPECT_EQ(s.bytes, 2 * 2928);
  EXPECT_DOUBLE_EQ(s.intensity, 2400.0 / 2928);
  EXPECT_FALSE(s.compute_bound);
  const LayerRoofline c = RooflineOf(layers[2], profiler.roofline());
  EXPECT_DOUBLE_EQ(c.intensity, 21600.0 / 3696);
  EXPECT_TRUE(c.compute_bound);
  // Its roof there is the peak; the shortcut's, 0.82 x 100 GB/s.
  EXPECT_NEAR(s.fraction_of_roof / s.fraction_of_peak, 2928.0 / 2400, 1e-9);
  EXPECT_NEAR(c.fraction_of_roof, c.fraction_of_peak, 1e-12);
  const std::string table = profiler.Table();
  EXPECT_THAT(table, HasSubstr("Roofline of Test CPU: peak 100.0 GFLOP/s "
                               "(fma, 1 threads), memory 100.0 GB/s "
                               "(triad), ridge 1.0 FLOP/byte"));
  EXPECT_THAT(table, HasSubstr("memory\n"));
  EXPECT_THAT(table, HasSubstr("compute\n"));
}

TEST(LayerProfilerTest, ObservesNoBackwardOnceDestroyed) {
  auto model = std::make_shared<nn::Sequential>();
  model->Add(std::make_shared<nn::ReLU>());
  {
    LayerProfiler profiler(*model);
    Step(*model, profiler, Tensor::FromVector({-1, 1}, Shape{1, 2}));
    EXPECT_EQ(profiler.Layers()[1].backward_nodes, 1);
  }
  EXPECT_EQ(autograd::SetBackwardObserver(nullptr), nullptr);
  EXPECT_EQ(autograd::NodeTag(), nullptr);
}

TEST(LayerProfilerTest, ChangesNothingAndLeavesNoHookBehind) {
  const data::InMemoryDataset train = data::testing::FakeImages(256, 1);
  const data::InMemoryDataset test = data::testing::FakeImages(64, 2);
  auto run = [&](bool profile, const std::string& name) {
    ManualSeed(7);
    std::shared_ptr<nn::Module> model = *models::LeNetSpec().make(28);
    TrainOptions o = OneEpoch(name);
    std::unique_ptr<LayerProfiler> profiler;
    if (profile) {
      profiler = std::make_unique<LayerProfiler>(*model, 1);
      o.observers.push_back(profiler.get());
    }
    absl::StatusOr<TrainSummary> s =
        Train(models::LeNetSpec(), *model, o, train, test);
    EXPECT_TRUE(s.ok()) << s.status();
    profiler.reset();  // removes its hooks: a later call must not reach it
    autograd::Variable out =
        (*model)(autograd::Variable(Normal(Shape{8, 1, 28, 28}, 0, 1)));
    Sum(out).Backward();
    return std::make_pair(*s, model->StateDict());
  };
  const auto [plain, plain_state] = run(false, "plain");
  const auto [profiled, profiled_state] = run(true, "profiled");
  ASSERT_EQ(plain.epochs.size(), profiled.epochs.size());
  EXPECT_EQ(plain.epochs[0].loss, profiled.epochs[0].loss);
  EXPECT_EQ(plain.epochs[0].test_acc, profiled.epochs[0].test_acc);
  for (const auto& [name, t] : plain_state) {
    EXPECT_EQ(t.ToVector(), profiled_state.at(name).ToVector()) << name;
  }
}

}  // namespace
}  // namespace dive::train
