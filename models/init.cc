#include "models/init.h"

#include "nn/conv2d.h"
#include "nn/init.h"
#include "nn/linear.h"

namespace dive::models {

void XavierInitWeights(nn::Module& module) {
  if (auto* linear = dynamic_cast<nn::Linear*>(&module)) {
    nn::XavierUniform(linear->weight().data());
  } else if (auto* conv = dynamic_cast<nn::Conv2d*>(&module)) {
    nn::XavierUniform(conv->weight().data());
  }
  for (const auto& [name, child] : module.children()) {
    XavierInitWeights(*child);
  }
}

void NormalInitWeights(nn::Module& module, float std) {
  if (auto* linear = dynamic_cast<nn::Linear*>(&module)) {
    nn::NormalInit(linear->weight().data(), 0.0f, std);
    if (linear->bias().defined()) nn::ZerosInit(linear->bias().data());
  }
  for (const auto& [name, child] : module.children()) {
    NormalInitWeights(*child, std);
  }
}

}  // namespace dive::models
