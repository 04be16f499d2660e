// File: tools/functional_module.h
// -----------------------------------------------------------------------------
//
// A module built from a function (testonly), for the exporters' tests: a
// graph of autograd functions, as the zoo's blocks are, or an op that an
// exporter cannot express, without a module class of its own.
//
// Example:
//
//   Functional net([](const autograd::Variable& x) {
//     return autograd::Relu(x) + 1.0f;
//   });
//   absl::StatusOr<onnx::ModelProto> model =
//       ExportOnnx(net, {1, 2, 4, 4}, "functional");

#ifndef TOOLS_FUNCTIONAL_MODULE_H_
#define TOOLS_FUNCTIONAL_MODULE_H_

#include <functional>
#include <string>
#include <utility>

#include "autograd/variable.h"
#include "nn/module.h"

namespace dive::tools {

// Forward(x) is f(x); no parameters. Describe() is "Functional".
class Functional : public nn::Module {
 public:
  explicit Functional(
      std::function<autograd::Variable(const autograd::Variable&)> f)
      : f_(std::move(f)) {}
  autograd::Variable Forward(const autograd::Variable& x) override {
    return f_(x);
  }
  std::string Describe() const override { return "Functional"; }

 private:
  std::function<autograd::Variable(const autograd::Variable&)> f_;
};

}  // namespace dive::tools

#endif  // TOOLS_FUNCTIONAL_MODULE_H_
