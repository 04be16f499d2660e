// File: nn/dropout.h
// -----------------------------------------------------------------------------
//
// `Dropout` (Srivastava et al., 2014) in its inverted form: in training mode
// each element is zeroed with probability p and the survivors are scaled by
// 1 / (1 - p), so the expected value is unchanged and evaluation mode is the
// identity. Masks are drawn from `dive::DefaultGenerator()`, so
// `dive::ManualSeed` makes them reproducible.
//
// Example:
//
//   nn::Dropout drop(0.5);
//   Variable y = drop(x);                     // training: about half zeroed,
//                                             // the rest doubled
//   drop.Eval();
//   Variable z = drop(x);                     // evaluation: z is x

#ifndef NN_DROPOUT_H_
#define NN_DROPOUT_H_

#include <string>

#include "autograd/variable.h"
#include "nn/module.h"

namespace dive::nn {

class Dropout : public Module {
 public:
  // CHECK-fails unless 0 <= p < 1.
  explicit Dropout(float p = 0.5f);

  autograd::Variable Forward(const autograd::Variable& x) override;
  // "Dropout(p=0.5)".
  std::string Describe() const override;
  float p() const { return p_; }

 private:
  float p_;
};

}  // namespace dive::nn

#endif  // NN_DROPOUT_H_
