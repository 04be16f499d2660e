#include "models/zoo.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/alexnet/alexnet.h"
#include "models/bn_lenet/bn_lenet.h"
#include "models/densenet/densenet.h"
#include "models/googlenet/googlenet.h"
#include "models/lenet/lenet.h"
#include "models/mlp/mlp.h"
#include "models/nin/nin.h"
#include "models/resnet/resnet.h"
#include "models/softmax/softmax.h"
#include "models/vgg/vgg.h"
#include "tensor/text.h"

namespace dive::models {

const std::vector<ModelSpec>& AllModels() {
  static const std::vector<ModelSpec>* const models =
      new std::vector<ModelSpec>{SoftmaxSpec(), MlpSpec(),     MlpDropoutSpec(),
                                 LeNetSpec(),   BnLeNetSpec(), AlexNetSpec(),
                                 VggSpec(),     NinSpec(),     GoogLeNetSpec(),
                                 ResNetSpec(),  DenseNetSpec()};
  return *models;
}

absl::StatusOr<ModelSpec> FindModel(const std::string& name) {
  std::vector<std::string> names;
  for (const ModelSpec& spec : AllModels()) {
    if (spec.name == name) return spec;
    names.push_back(spec.name);
  }
  return absl::NotFoundError(
      absl::StrCat("unknown model '", Printable(name),
                   "'; known models: ", absl::StrJoin(names, ", ")));
}

}  // namespace dive::models
