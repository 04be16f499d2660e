#include "nn/testing.h"

#include <vector>

#include "autograd/variable.h"
#include "glog/logging.h"

namespace dive::nn {

absl::Status GradCheckModule(Module& module, const Tensor& x,
                             const GradCheckOptions& options) {
  const std::vector<Variable> params = module.Parameters();
  std::vector<Tensor> inputs{x};
  std::vector<Tensor> saved;
  for (const Variable& p : params) {
    inputs.push_back(p.data().Clone());
    saved.push_back(p.data().Clone());
  }

  // GradCheck perturbs its own copies `in` of the inputs. Each call copies
  // them into the module's parameters and runs the module; when a graph is
  // wanted, the result is wrapped in a node whose backward backpropagates
  // through the module's graph and hands out the gradients that the input
  // and the module's parameters received.
  auto f = [&module, &params](const std::vector<Variable>& in) {
    for (size_t k = 0; k < params.size(); ++k) {
      Tensor dst = params[k].data();
      dst.CopyFrom(in[k + 1].data());
    }
    if (!GradEnabled()) return module(in[0].Detach());
    Variable input(in[0].data(), /*requires_grad=*/true);
    Variable output = module(input);
    return Variable::FromOp(
        "GradCheckModule", output.data(), in,
        [input, output, params](const Tensor& grad) mutable {
          input.ZeroGrad();
          for (Variable p : params) p.ZeroGrad();  // a handle copy
          output.Backward(grad);
          std::vector<Tensor> grads{input.grad()};
          for (const Variable& p : params) grads.push_back(p.grad());
          return grads;
        });
  };
  const absl::Status status = GradCheck(f, inputs, options);

  for (size_t k = 0; k < params.size(); ++k) {
    Tensor dst = params[k].data();
    dst.CopyFrom(saved[k]);
  }
  module.ZeroGrad();
  return status;
}

void AssignValues(const Tensor& t, const std::vector<float>& values) {
  CHECK_EQ(static_cast<int64_t>(values.size()), t.numel())
      << "AssignValues: " << values.size() << " values for shape "
      << t.shape();
  Tensor dst = t;
  dst.CopyFrom(Tensor::FromVector(values, t.shape()));
}

}  // namespace dive::nn
