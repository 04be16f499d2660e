// File: nn/containers.h
// -----------------------------------------------------------------------------
//
// Building blocks for networks that are not a plain chain:
//
//   * `Concat`: parallel branches applied to the same input, their outputs
//     joined along the channel axis (GoogLeNet's Inception block, DenseNet's
//     dense connections). Children are named "0", "1", ...
//   * `Residual`: y = body(x) + shortcut(x), the shortcut being the identity
//     when none is given (ResNet's residual block; put a ReLU after it in a
//     `Sequential`). Children are named "body" and "shortcut".
//   * `Identity`: returns its input.
//
// Example (a residual block that halves the resolution):
//
//   auto body = std::make_shared<nn::Sequential>(...);     // stride-2 convs
//   auto down = std::make_shared<nn::Conv2d>(64, 128, 1, /*stride=*/2);
//   nn::Sequential block({std::make_shared<nn::Residual>(body, down),
//                         std::make_shared<nn::ReLU>()});
//
//   nn::Concat inception({branch1, branch2, branch3, branch4});
//   Variable y = inception(x);                // channels add up

#ifndef NN_CONTAINERS_H_
#define NN_CONTAINERS_H_

#include <initializer_list>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "autograd/variable.h"
#include "nn/module.h"

namespace dive::nn {

// Returns its input unchanged.
class Identity : public Module {
 public:
  autograd::Variable Forward(const autograd::Variable& x) override { return x; }
  std::string Describe() const override { return "Identity"; }
};

class Concat : public Module {
 public:
  // Branches (none null) whose outputs are joined along `axis` (by default
  // the channel axis of NCHW).
  explicit Concat(std::initializer_list<std::shared_ptr<Module>> branches,
                  int axis = 1);
  explicit Concat(int axis = 1) : axis_(axis) {}

  // Appends a branch under the next index; returns it with its own type.
  template <typename M>
  std::shared_ptr<M> Add(std::shared_ptr<M> branch) {
    return RegisterModule(absl::StrCat(children().size()), std::move(branch));
  }

  // Applies every branch to x and concatenates the results. CHECK-fails
  // without branches, or naming each branch's output shape when they cannot
  // be joined.
  autograd::Variable Forward(const autograd::Variable& x) override;
  // "Concat(axis=1)".
  std::string Describe() const override;

 private:
  int axis_;
};

class Residual : public Module {
 public:
  // `body` must not be null; a null `shortcut` is the identity.
  explicit Residual(std::shared_ptr<Module> body,
                    std::shared_ptr<Module> shortcut = nullptr);

  // body(x) + shortcut(x). CHECK-fails naming both shapes when they differ.
  autograd::Variable Forward(const autograd::Variable& x) override;
  // "Residual".
  std::string Describe() const override { return "Residual"; }

 private:
  std::shared_ptr<Module> body_;
  std::shared_ptr<Module> shortcut_;
};

}  // namespace dive::nn

#endif  // NN_CONTAINERS_H_
