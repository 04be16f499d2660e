#include "nn/flatten.h"

#include "absl/strings/str_cat.h"
#include "autograd/functions.h"
#include "glog/logging.h"

namespace dive::nn {

autograd::Variable Flatten::Forward(const autograd::Variable& x) {
  const int rank = x.rank();
  const int start = start_ < 0 ? start_ + rank : start_;
  const int end = end_ < 0 ? end_ + rank : end_;
  CHECK(start >= 0 && end < rank && start <= end)
      << Describe() << ": cannot flatten an input of shape " << x.shape();
  return dive::autograd::Flatten(x, start, end);
}

std::string Flatten::Describe() const {
  return absl::StrCat("Flatten(start=", start_, ", end=", end_, ")");
}

}  // namespace dive::nn
