// File: tensor/qgemm_kernels_avx2_store.h
// -----------------------------------------------------------------------------
//
// Internal to the 256-bit int8 kernel files (qgemm_kernels_avx2.cc,
// qgemm_kernels_avx_vnni.cc): the requantizing store of their 6 x 16 tile of
// int32 sums (QTileEpilogue, tensor/qgemm_kernels.h) from ymm registers.
// Internal linkage, so each file compiles its own copy for its own ISA.

#ifndef TENSOR_QGEMM_KERNELS_AVX2_STORE_H_
#define TENSOR_QGEMM_KERNELS_AVX2_STORE_H_

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "tensor/qgemm_kernels.h"

namespace dive::qgemm_internal {
namespace {

constexpr int kMr = 6;
constexpr int kNr = 16;  // two ymm vectors per row of the tile

// Stores e(s) for row i, columns j0 .. j0 + cols - 1 (cols <= 8) of the
// tile, with the arithmetic of QTileEpilogue (the scale product in double,
// rounded half to even). Partial vectors go through small buffers.
__attribute__((always_inline)) inline void StoreSums8(__m256i s,
                                                      const QTileEpilogue& e,
                                                      int i, int j0, int cols) {
  const bool full = cols == 8;
  __m256i offset;
  if (e.channel_is_row) {
    offset = _mm256_set1_epi32(e.offset[i]);
  } else if (full) {
    offset =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e.offset + j0));
  } else {
    int32_t part[8] = {};
    std::memcpy(part, e.offset + j0, cols * sizeof(int32_t));
    offset = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(part));
  }
  const __m256i v = _mm256_add_epi32(s, offset);
  const int64_t at = i * e.ldc + j0;
  if (e.store == QStore::kInt32) {
    int32_t* out = static_cast<int32_t*>(e.c) + at;
    if (full) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), v);
    } else {
      int32_t part[8];
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(part), v);
      std::memcpy(out, part, cols * sizeof(int32_t));
    }
    return;
  }
  __m256d scale_lo, scale_hi;
  if (e.channel_is_row) {
    scale_lo = scale_hi = _mm256_set1_pd(e.scale[i]);
  } else {
    double part[8] = {};
    std::memcpy(part, e.scale + j0, cols * sizeof(double));
    scale_lo = _mm256_loadu_pd(part);
    scale_hi = _mm256_loadu_pd(part + 4);
  }
  __m256d lo =
      _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(v)), scale_lo);
  __m256d hi = _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(v, 1)),
                             scale_hi);
  if (e.store == QStore::kFloat) {
    __m256 f = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
    if (e.relu) f = _mm256_max_ps(f, _mm256_setzero_ps());
    float* out = static_cast<float*>(e.c) + at;
    if (full) {
      _mm256_storeu_ps(out, f);
    } else {
      float part[8];
      _mm256_storeu_ps(part, f);
      std::memcpy(out, part, cols * sizeof(float));
    }
    return;
  }
  const __m256d low = _mm256_set1_pd(e.relu ? 0.0 : -e.zero_point);
  const __m256d high = _mm256_set1_pd(255.0 - e.zero_point);
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  lo = _mm256_round_pd(_mm256_min_pd(_mm256_max_pd(lo, low), high), kNearest);
  hi = _mm256_round_pd(_mm256_min_pd(_mm256_max_pd(hi, low), high), kNearest);
  const __m128i zp = _mm_set1_epi32(e.zero_point);
  const __m128i q_lo = _mm_add_epi32(_mm256_cvttpd_epi32(lo), zp);
  const __m128i q_hi = _mm_add_epi32(_mm256_cvttpd_epi32(hi), zp);
  const __m128i words = _mm_packs_epi32(q_lo, q_hi);  // 0..255: exact
  const __m128i bytes = _mm_packus_epi16(words, words);
  uint8_t* out = static_cast<uint8_t*>(e.c) + at;
  if (full) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out), bytes);
  } else {
    uint8_t part[16];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(part), bytes);
    std::memcpy(out, part, cols);
  }
}

// Stores the tile [mr, nr] of acc (row i in acc[i][0], acc[i][1]).
__attribute__((always_inline)) inline void StoreTile6x16(
    const __m256i (&acc)[kMr][2], const QTileEpilogue& e, int mr, int nr) {
  const int cols0 = nr < 8 ? nr : 8, cols1 = nr > 8 ? nr - 8 : 0;
  // Constant row indices: a runtime index into acc would keep it in memory.
#pragma GCC unroll 8
  for (int i = 0; i < kMr; ++i) {
    if (i < mr) {
      StoreSums8(acc[i][0], e, i, 0, cols0);
      if (cols1 > 0) StoreSums8(acc[i][1], e, i, 8, cols1);
    }
  }
}

}  // namespace
}  // namespace dive::qgemm_internal

#endif  // TENSOR_QGEMM_KERNELS_AVX2_STORE_H_
