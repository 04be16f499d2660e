#include "models/zoo.h"

#include <set>

#include "gtest/gtest.h"

namespace dive::models {
namespace {

TEST(Zoo, HasEveryArchitectureOfTheBookOnce) {
  std::set<std::string> names;
  for (const ModelSpec& spec : AllModels()) {
    EXPECT_TRUE(names.insert(spec.name).second) << spec.name;
    EXPECT_FALSE(spec.description.empty()) << spec.name;
    EXPECT_GT(spec.recipe.lr, 0) << spec.name;
  }
  EXPECT_EQ(names,
            (std::set<std::string>{"softmax", "mlp", "mlp_dropout", "lenet",
                                   "bn_lenet", "alexnet", "vgg", "nin",
                                   "googlenet", "resnet", "densenet"}));
}

TEST(Zoo, EverySpecTakesTheSizesItNames) {
  for (const ModelSpec& spec : AllModels()) {
    SCOPED_TRACE(spec.name);
    const Recipe& r = spec.recipe;
    EXPECT_GT(r.batch_size, 0);
    EXPECT_GT(r.epochs, 0);
    EXPECT_LE(spec.min_input_size, spec.quick_input_size);
    EXPECT_LE(spec.quick_input_size, r.input_size);
    EXPECT_LE(r.input_size, spec.max_input_size);
    EXPECT_TRUE(spec.make(spec.min_input_size).ok());
    EXPECT_TRUE(spec.make(spec.quick_input_size).ok());
    EXPECT_EQ(spec.make(spec.max_input_size + 1).status().code(),
              absl::StatusCode::kInvalidArgument);
    if (spec.min_input_size > 1) {
      EXPECT_EQ(spec.make(spec.min_input_size - 1).status().code(),
                absl::StatusCode::kInvalidArgument);
    }
  }
}

TEST(Zoo, FindModel) {
  EXPECT_EQ(FindModel("resnet")->name, "resnet");
  absl::StatusOr<ModelSpec> missing = FindModel("lenet7");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("unknown model 'lenet7'"),
            std::string::npos);
  EXPECT_NE(missing.status().message().find("densenet"), std::string::npos);
  // A name read from a checkpoint cannot steer the terminal it is shown on.
  absl::StatusOr<ModelSpec> hostile = FindModel("x\x1b]0;PWNED\a\x1b[2J");
  EXPECT_EQ(hostile.status().message().find('\x1b'), std::string::npos);
  EXPECT_NE(hostile.status().message().find("'x\\x1b]0;PWNED\\x07"),
            std::string::npos)
      << hostile.status().message();
}

}  // namespace
}  // namespace dive::models
