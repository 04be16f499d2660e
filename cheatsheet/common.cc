#include "cheatsheet/common.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "glog/logging.h"

namespace dive::cheatsheet {

float MaxAbsDiff(const Tensor& a, const Tensor& b) {
  CHECK(a.shape() == b.shape())
      << "MaxAbsDiff: shapes " << a.shape() << " and " << b.shape();
  return MaxAbsDiff(a.ToVector(), b.ToVector());
}

float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  CHECK_EQ(a.size(), b.size()) << "MaxAbsDiff: sizes";
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const float d = std::fabs(a[i] - b[i]);
    // NaN must not compare as "no difference".
    if (!(d <= m)) m = std::isnan(d) ? d : std::max(m, d);
  }
  return m;
}

std::string FormatRow(const std::vector<float>& values, int digits) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ", ";
    out += absl::StrFormat("%.*f", digits, values[i]);
  }
  return out + "]";
}

std::string FormatMatrix(const Tensor& t, int digits,
                         const std::string& indent) {
  const std::vector<float> v = t.Contiguous().ToVector();
  const int64_t cols = t.rank() == 0 ? 1 : t.dim(-1);
  std::string out;
  for (size_t start = 0; start < v.size(); start += cols) {
    out += indent;
    out += FormatRow(std::vector<float>(v.begin() + start,
                                        v.begin() + start + cols),
                     digits);
    out += "\n";
  }
  return out;
}

}  // namespace dive::cheatsheet
