// Every zoo model takes the same three SGD (momentum, weight decay) and Adam
// steps as its PyTorch twin: the losses within 1e-4 (relative) and the
// weights and BatchNorm statistics within 1e-4 (relative to magnitudes above
// 1) of the goldens that models/make_step_parity_golden.py recorded in
// PyTorch from the same start (models/step_parity.h).

#include "models/step_parity.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "models/spec.h"
#include "models/zoo.h"
#include "tensor/safetensors.h"

namespace dive::models {
namespace {

// |got - want| within `tolerance` times max(1, |want|).
::testing::AssertionResult Near(double got, double want, double tolerance) {
  if (std::abs(got - want) <= tolerance * std::max(1.0, std::abs(want))) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "got " << got << ", want " << want
                                       << " (difference " << got - want << ")";
}

std::vector<double> Values(const Tensor& t) {
  std::vector<double> out;
  const Tensor c = t.Contiguous();
  for (int64_t i = 0; i < c.numel(); ++i) {
    out.push_back(c.dtype() == DType::kInt64 ? c.data<int64_t>()[i]
                                             : c.data<float>()[i]);
  }
  return out;
}

class StepParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(StepParityTest, ThreeStepsAsInPyTorch) {
  const ModelSpec spec = *FindModel(GetParam());
  absl::StatusOr<SafetensorsFile> golden = LoadSafetensors(
      absl::StrCat("models/testdata/step_parity/", spec.name, ".safetensors"));
  ASSERT_TRUE(golden.ok()) << golden.status();
  for (const std::string optimizer_name : kParityOptimizers) {
    SCOPED_TRACE(optimizer_name);
    const std::string prefix = optimizer_name + ".";
    const ParityCase c = MakeParityCase(spec);
    std::map<std::string, Tensor> start;
    for (const auto& [key, t] : c.net->StateDict()) start[key] = t.Clone();
    std::unique_ptr<optim::Optimizer> optimizer =
        MakeParityOptimizer(optimizer_name, *c.net);
    const std::vector<float> losses = RunParitySteps(c, *optimizer);

    const std::vector<double> want_losses =
        Values(golden->tensors.at(prefix + "losses"));
    ASSERT_EQ(want_losses.size(), losses.size());
    for (size_t i = 0; i < losses.size(); ++i) {
      EXPECT_TRUE(Near(losses[i], want_losses[i], 1e-4)) << "loss " << i;
    }

    // Parameters whose gradient is only roundoff (a bias that the BatchNorm
    // after it cancels): Adam turns roundoff into full steps of either sign,
    // in PyTorch as here, so only their bound holds.
    const auto roundoff = golden->metadata.find(prefix + "roundoff");
    const std::vector<std::string> roundoff_keys =
        roundoff == golden->metadata.end() || roundoff->second.empty()
            ? std::vector<std::string>{}
            : absl::StrSplit(roundoff->second, ',');
    for (const auto& [key, t] : c.net->StateDict()) {
      SCOPED_TRACE(key);
      const std::vector<double> got = Values(t);
      const std::vector<double> before = Values(start.at(key));
      double norm = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        norm += (got[i] - before[i]) * (got[i] - before[i]);
      }
      norm = std::sqrt(norm);
      if (std::find(roundoff_keys.begin(), roundoff_keys.end(), key) !=
          roundoff_keys.end()) {
        EXPECT_LE(norm, kParitySteps * kParityAdamLr *
                            std::sqrt(double(t.numel())) * 1.01);
        continue;
      }
      const auto samples = golden->tensors.find(prefix + key + ".samples");
      ASSERT_NE(samples, golden->tensors.end()) << "no golden for " << key;
      const std::vector<double> want = Values(samples->second);
      const std::vector<int64_t> at = ParitySampleIndices(t.numel());
      ASSERT_EQ(want.size(), at.size());
      for (size_t k = 0; k < at.size(); ++k) {
        EXPECT_TRUE(Near(got[at[k]], want[k], 1e-4)) << "element " << at[k];
      }
      const double want_norm =
          Values(golden->tensors.at(prefix + key + ".update_norm"))[0];
      // Over all elements, so also those whose gradients are tiny: float32
      // gets them to a few digits, and Adam's steps follow their direction.
      EXPECT_LE(std::abs(norm - want_norm), 1e-2 * want_norm + 1e-6)
          << "update norm " << norm << ", want " << want_norm;
    }
  }
}

std::vector<std::string> ZooNames() {
  std::vector<std::string> names;
  for (const ModelSpec& spec : AllModels()) names.push_back(spec.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Zoo, StepParityTest, ::testing::ValuesIn(ZooNames()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace dive::models
