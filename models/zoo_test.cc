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
  EXPECT_EQ(names, (std::set<std::string>{
                       "softmax", "mlp", "mlp_dropout", "lenet", "bn_lenet",
                       "alexnet", "vgg", "nin", "googlenet", "resnet",
                       "densenet"}));
}

TEST(Zoo, FindModel) {
  EXPECT_EQ(FindModel("resnet")->name, "resnet");
  absl::StatusOr<ModelSpec> missing = FindModel("lenet7");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("unknown model 'lenet7'"),
            std::string::npos);
  EXPECT_NE(missing.status().message().find("densenet"), std::string::npos);
}

}  // namespace
}  // namespace dive::models
