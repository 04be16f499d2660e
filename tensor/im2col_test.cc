// Tests of the im2col blocks against the definition, once per kernel path
// (tensor/BUILD's *_test per ISA: the AVX-512 vector path and the scalar
// one), for float32 and bf16 x.

#include "tensor/im2col.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tensor/bf16.h"
#include "tensor/random.h"

namespace dive::conv_internal {
namespace {

ConvGeometry Geometry(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k,
                      int64_t stride, int64_t pad) {
  ConvGeometry g;
  g.n = n;
  g.c = c;
  g.oc = 1;
  g.h = h;
  g.w = w;
  g.kh = g.kw = k;
  g.sh = g.sw = stride;
  g.ph = g.pw = pad;
  g.oh = (h + 2 * pad - k) / stride + 1;
  g.ow = (w + 2 * pad - k) / stride + 1;
  return g;
}

std::string Describe(const ConvGeometry& g) {
  return absl::StrCat("x [", g.n, ", ", g.c, ", ", g.h, ", ", g.w, "], ",
                      g.kh, "x", g.kw, " stride ", g.sh, " pad ", g.ph);
}

// Every path of the vector im2col: "same" windows (one run per group),
// maps narrower than a group (several images and runs per group), strided
// windows, 1x1 (the GEMM's direct case), an 11x11 stride-4 window (groups of
// many short runs: gathers) and a window as large as its map.
std::vector<ConvGeometry> Geometries() {
  return {Geometry(2, 3, 12, 12, 3, 1, 1),  Geometry(5, 2, 3, 3, 3, 1, 1),
          Geometry(3, 4, 9, 11, 3, 2, 1),   Geometry(4, 5, 6, 6, 1, 1, 0),
          Geometry(2, 3, 10, 10, 1, 2, 0),  Geometry(2, 2, 50, 50, 11, 4, 2),
          Geometry(2, 3, 15, 15, 7, 2, 3),  Geometry(3, 2, 3, 3, 3, 1, 0),
          Geometry(1, 2, 20, 17, 5, 1, 2)};
}

// col[r, q] by definition (zero outside the image).
float ColAt(const ConvGeometry& g, const std::vector<float>& x, int64_t r,
            int64_t q) {
  const int64_t c = r / (g.kh * g.kw), a = r / g.kw % g.kh, b = r % g.kw;
  const int64_t image = q / g.Ohw(), i = q % g.Ohw() / g.ow, j = q % g.ow;
  const int64_t ih = i * g.sh - g.ph + a, iw = j * g.sw - g.pw + b;
  if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) return 0.0f;
  return x[((image * g.c + c) * g.h + ih) * g.w + iw];
}

// x with a few special values: float subnormals, values whose bf16
// rounding is a subnormal, signed zeros and values halfway between two
// bf16.
std::vector<float> Input(const ConvGeometry& g, uint64_t seed) {
  Generator gen(seed);
  std::vector<float> x(static_cast<size_t>(g.n * g.InPlane()));
  for (float& v : x) v = gen.NextNormal(0.0f, 1.0f);
  const float specials[] = {1e-40f, -3e-39f, 2e-38f, -0.0f, 0.0f,
                            1.00390625f, -2.0078125f};
  for (size_t i = 0; i < x.size(); i += 7) {
    x[i] = specials[(i / 7) % (sizeof(specials) / sizeof(specials[0]))];
  }
  return x;
}

TEST(Im2Col, BlocksMatchTheDefinition) {
  for (const ConvGeometry& g : Geometries()) {
    SCOPED_TRACE(Describe(g));
    const std::vector<float> x = Input(g, 1);
    std::vector<bfloat16> x16(x.size());
    for (size_t i = 0; i < x.size(); ++i) x16[i] = bfloat16(x[i]);
    const int64_t rows = g.Ckk(), cols = g.n * g.Ohw();
    // Whole, and an inner block (rows and columns not from the start).
    const std::pair<int64_t, int64_t> starts[] = {
        {0, 0}, {1, std::min<int64_t>(5, cols - 1)}};
    for (const auto& [r0, q0] : starts) {
      const int64_t rn = rows - r0, qn = cols - q0, ld = qn + 3;
      std::vector<float> got(static_cast<size_t>(rn * ld), -7.0f);
      std::vector<float> got16(got);
      Im2ColBlock(g, x.data(), r0, rn, q0, qn, got.data(), ld);
      Im2ColBlock(g, x16.data(), r0, rn, q0, qn, got16.data(), ld);
      for (int64_t r = 0; r < rn; ++r) {
        for (int64_t q = 0; q < qn; ++q) {
          const float want = ColAt(g, x, r0 + r, q0 + q);
          ASSERT_EQ(got[r * ld + q], want) << "row " << r0 + r << " col "
                                           << q0 + q;
          ASSERT_EQ(got16[r * ld + q], static_cast<float>(bfloat16(want)))
              << "bf16 x, row " << r0 + r << " col " << q0 + q;
        }
        ASSERT_EQ(got[r * ld + qn], -7.0f) << "wrote past the block";
      }
    }
  }
}

}  // namespace
}  // namespace dive::conv_internal
