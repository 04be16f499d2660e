#include "nn/testing.h"

#include <vector>

#include "autograd/variable.h"
#include "glog/logging.h"

namespace dive::nn {

absl::Status GradCheckModule(Module& module, const Tensor& x,
                             const autograd::GradCheckOptions& options) {
  const std::vector<autograd::Variable> params = module.Parameters();
  std::vector<Tensor> inputs{x};
  std::vector<Tensor> saved;
  for (const autograd::Variable& p : params) {
    inputs.push_back(p.data().Clone());
    saved.push_back(p.data().Clone());
  }

  // GradCheck perturbs its own copies `in` of the inputs. Each call copies
  // them into the module's parameters and runs the module; when a graph is
  // wanted, the result is wrapped in a node whose backward backpropagates
  // through the module's graph and hands out the gradients that the input
  // and the module's parameters received.
  auto f = [&module, &params](const std::vector<autograd::Variable>& in) {
    for (size_t k = 0; k < params.size(); ++k) {
      Tensor dst = params[k].data();
      dst.CopyFrom(in[k + 1].data());
    }
    if (!autograd::GradEnabled()) return module(in[0].Detach());
    autograd::Variable input(in[0].data(), /*requires_grad=*/true);
    autograd::Variable output = module(input);
    return autograd::Variable::FromOp(
        "GradCheckModule", output.data(), in,
        [input, output, params](const Tensor& grad) mutable {
          input.ZeroGrad();
          for (autograd::Variable p : params) p.ZeroGrad();  // a handle copy
          output.Backward(grad);
          std::vector<Tensor> grads{input.grad()};
          for (const autograd::Variable& p : params) grads.push_back(p.grad());
          return grads;
        });
  };
  const absl::Status status = autograd::GradCheck(f, inputs, options);

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
