// File: tensor/qgemm_kernels_avx512_store.h
// -----------------------------------------------------------------------------
//
// Internal to the AVX-512 int8 kernel files (qgemm_kernels_avx512_vnni.cc,
// qgemm_kernels_amx.cc): the requantizing store of 16 int32 sums
// (QTileEpilogue, tensor/qgemm_kernels.h) from a zmm register. Internal
// linkage, so each file compiles its own copy for its own instruction set.

#ifndef TENSOR_QGEMM_KERNELS_AVX512_STORE_H_
#define TENSOR_QGEMM_KERNELS_AVX512_STORE_H_

#include <immintrin.h>

#include <cstdint>

#include "tensor/qgemm_kernels.h"

namespace dive::qgemm_internal {
namespace {

// The lanes of a row of nr columns that vector v (16 columns) holds.
__attribute__((always_inline)) inline __mmask16 LaneMask(int nr, int v) {
  const int rest = nr - 16 * v;
  const int left = rest < 0 ? 0 : rest > 16 ? 16 : rest;
  return static_cast<__mmask16>((1u << left) - 1u);
}

// Stores e(s) for row i, columns j0 .. j0 + 15 of the tile (those in
// `mask`), with the arithmetic of QTileEpilogue: the scale product in double
// (exact for every int32 times a float), rounded half to even.
__attribute__((always_inline)) inline void StoreSums16(__m512i s,
                                                       const QTileEpilogue& e,
                                                       int i, int j0,
                                                       __mmask16 mask) {
  const __m512i offset = e.channel_is_row
                             ? _mm512_set1_epi32(e.offset[i])
                             : _mm512_maskz_loadu_epi32(mask, e.offset + j0);
  const __m512i v = _mm512_add_epi32(s, offset);
  const int64_t at = i * e.ldc + j0;
  if (e.store == QStore::kInt32) {
    _mm512_mask_storeu_epi32(static_cast<int32_t*>(e.c) + at, mask, v);
    return;
  }
  __m512d scale_lo, scale_hi;
  if (e.channel_is_row) {
    scale_lo = scale_hi = _mm512_set1_pd(e.scale[i]);
  } else {
    scale_lo = _mm512_maskz_loadu_pd(static_cast<__mmask8>(mask), e.scale + j0);
    scale_hi = _mm512_maskz_loadu_pd(static_cast<__mmask8>(mask >> 8),
                                     e.scale + j0 + 8);
  }
  __m512d lo =
      _mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(v)), scale_lo);
  __m512d hi = _mm512_mul_pd(
      _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(v, 1)), scale_hi);
  if (e.store == QStore::kFloat) {
    __m512 f = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)),
                                  _mm512_cvtpd_ps(hi), 1);
    if (e.relu) f = _mm512_max_ps(f, _mm512_setzero_ps());
    _mm512_mask_storeu_ps(static_cast<float*>(e.c) + at, mask, f);
    return;
  }
  const __m512d low = _mm512_set1_pd(e.relu ? 0.0 : -e.zero_point);
  const __m512d high = _mm512_set1_pd(255.0 - e.zero_point);
  lo = _mm512_min_pd(_mm512_max_pd(lo, low), high);
  hi = _mm512_min_pd(_mm512_max_pd(hi, low), high);
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m512i q = _mm512_add_epi32(
      _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm512_cvt_roundpd_epi32(lo, kNearest)),
          _mm512_cvt_roundpd_epi32(hi, kNearest), 1),
      _mm512_set1_epi32(e.zero_point));
  _mm_mask_storeu_epi8(static_cast<uint8_t*>(e.c) + at, mask,
                       _mm512_cvtepi32_epi8(q));
}

}  // namespace
}  // namespace dive::qgemm_internal

#endif  // TENSOR_QGEMM_KERNELS_AVX512_STORE_H_
