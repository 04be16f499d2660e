// File: nn/flatten.h
// -----------------------------------------------------------------------------
//
// `Flatten` joins dimensions [start, end] of its input into one, by default
// everything but the batch dimension: the bridge from convolutional feature
// maps to fully connected layers. It has no parameters, and the result is a
// view when the input is contiguous.
//
// Example:
//
//   nn::Flatten flatten;                      // start = 1, end = -1
//   Variable y = flatten(x);                  // [N, 16, 5, 5] -> [N, 400]

#ifndef NN_FLATTEN_H_
#define NN_FLATTEN_H_

#include <string>

#include "autograd/variable.h"
#include "nn/module.h"

namespace dive::nn {

class Flatten : public Module {
 public:
  // Dimensions [start, end] (negative counts from the back).
  explicit Flatten(int start = 1, int end = -1) : start_(start), end_(end) {}

  // CHECK-fails naming the layer and the shape when x has no dimension
  // `start` or `end`, or `start` comes after `end`.
  autograd::Variable Forward(const autograd::Variable& x) override;
  // "Flatten(start=1, end=-1)".
  std::string Describe() const override;
  int start() const { return start_; }
  int end() const { return end_; }

 private:
  int start_;
  int end_;
};

}  // namespace dive::nn

#endif  // NN_FLATTEN_H_
