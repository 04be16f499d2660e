#include "models/init.h"

#include "nn/conv2d.h"
#include "nn/init.h"
#include "nn/linear.h"

namespace dive::models {

void XavierInitWeights(nn::Module& module) {
  for (const auto& [name, m] : module.NamedModules()) {
    if (auto* linear = dynamic_cast<nn::Linear*>(m)) {
      nn::XavierUniform(linear->weight().data());
    } else if (auto* conv = dynamic_cast<nn::Conv2d*>(m)) {
      nn::XavierUniform(conv->weight().data());
    }
  }
}

void NormalInitWeights(nn::Module& module, float std) {
  for (const auto& [name, m] : module.NamedModules()) {
    if (auto* linear = dynamic_cast<nn::Linear*>(m)) {
      nn::NormalInit(linear->weight().data(), 0.0f, std);
      if (linear->bias().defined()) nn::ZerosInit(linear->bias().data());
    }
  }
}

}  // namespace dive::models
