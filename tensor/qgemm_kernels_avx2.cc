// AVX2 micro-kernels of the int8 GEMM for CPUs without VNNI (see
// qgemm_kernels.h), the avx2 and the avx2_u7 paths'. Compiled with -mavx2
// -mfma (and not -mavxvnni, so that no VPDPWSSD is generated); run where the
// CPU has AVX2.
//
// avx2: exact by construction: both operands are packed widened to int16
// (pairs along k), and VPMADDWD sums two int16 products into an int32 lane,
// at most 2 * 255 * 128 in magnitude. (VPMADDUBSW, which takes the bytes as
// they are, saturates its int16 pair sums: 255 * 127 * 2 > 32767.) A 6 x 16
// tile in 12 ymm accumulators: per two steps of k, two loads of R and six
// broadcasts of an L pair, 12 VPMADDWD and 12 VPADDD.
//
// avx2_u7: VPMADDUBSW on the bytes, for uint8 operands within 0..127 (below).

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "tensor/qgemm_kernels.h"
#include "tensor/qgemm_kernels_avx2_store.h"

namespace dive::qgemm_internal {
namespace {

void Kernel6x16(int64_t k_steps, const void* l_panel, const void* r_panel,
                const QTileEpilogue& e, int mr, int nr) {
  const uint8_t* __restrict l = static_cast<const uint8_t*>(l_panel);
  const __m256i* __restrict r = static_cast<const __m256i*>(r_panel);
  __m256i acc[kMr][2];
#pragma GCC unroll 8
  for (int i = 0; i < kMr; ++i) {
    acc[i][0] = _mm256_setzero_si256();
    acc[i][1] = _mm256_setzero_si256();
  }
  for (int64_t p = 0; p < k_steps; ++p) {
    const __m256i b0 = _mm256_load_si256(r);
    const __m256i b1 = _mm256_load_si256(r + 1);
#pragma GCC unroll 8
    for (int i = 0; i < kMr; ++i) {
      int32_t pair;
      std::memcpy(&pair, l + 4 * i, 4);
      const __m256i a = _mm256_set1_epi32(pair);
      acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(a, b0));
      acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(a, b1));
    }
    l += 4 * kMr;
    r += 2;
  }
  StoreTile6x16(acc, e, mr, nr);
}

// ---- avx2_u7: VPMADDUBSW for uint8 operands within 0..127 ------------------
//
// On the quads layout (the VNNI kernels'): VPMADDUBSW multiplies the uint8
// and int8 bytes and sums adjacent pairs into int16, VPMADDWD with ones sums
// adjacent int16 into the int32 lane: VPDPBUSD's four products per lane.
// Exact where every uint8 byte is at most 127 (PyTorch's reduce_range): a
// pair sum is within 2 * 127 * 128 = 32512 < 2^15. The driver (qgemm.cc)
// scans the activations of each call and takes these kernels only then;
// otherwise the split ones below, exact for any byte u = (u & 127) + 128 *
// (u >> 7): VPMADDUBSW of the low 7 bits as above, of the high bit (pair
// sums within 2 * 128), that one's pairs summed by VPMADDWD with 128s.
// A 6 x 16 tile in 12 ymm accumulators: per four steps of k, two loads of R,
// six broadcasts of an L quad, 12 VPMADDUBSW, 12 VPMADDWD and 12 VPADDD.

// The int32 lane sums of u (uint8) by s (int8) quads, u <= 127.
__attribute__((always_inline)) inline __m256i DotU7(__m256i u, __m256i s,
                                                    __m256i ones) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), ones);
}

// The same for any u: lo = u & 127, hi = u >> 7 (0 or 1 per byte).
__attribute__((always_inline)) inline __m256i DotSplit(__m256i lo, __m256i hi,
                                                       __m256i s, __m256i ones,
                                                       __m256i v128) {
  return _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(lo, s), ones),
                          _mm256_madd_epi16(_mm256_maddubs_epi16(hi, s), v128));
}

// R packed (r_offsets null), or read in place (quad row q at r +
// r_offsets[q]). kSplit: the uint8 operand may exceed 127.
template <bool kLeftU8, bool kIndirect, bool kSplit>
__attribute__((always_inline)) inline void TileU7(
    int64_t k_steps, const void* l_panel, const uint8_t* __restrict r,
    const int64_t* __restrict r_offsets, const QTileEpilogue& e, int mr,
    int nr) {
  const uint8_t* __restrict l = static_cast<const uint8_t*>(l_panel);
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i v128 = _mm256_set1_epi16(128);
  const __m256i low7 = _mm256_set1_epi8(0x7f);
  const __m256i one8 = _mm256_set1_epi8(1);
  __m256i acc[kMr][2];
#pragma GCC unroll 8
  for (int i = 0; i < kMr; ++i) {
    acc[i][0] = _mm256_setzero_si256();
    acc[i][1] = _mm256_setzero_si256();
  }
  for (int64_t q = 0; q < k_steps; ++q) {
    const __m256i* rq =
        reinterpret_cast<const __m256i*>(kIndirect ? r + r_offsets[q] : r);
    const __m256i b0 =
        kIndirect ? _mm256_loadu_si256(rq) : _mm256_load_si256(rq);
    const __m256i b1 =
        kIndirect ? _mm256_loadu_si256(rq + 1) : _mm256_load_si256(rq + 1);
    // The split of R where it is the uint8 operand (unused otherwise).
    __m256i b0_lo = b0, b0_hi = b0, b1_lo = b1, b1_hi = b1;
    if (kSplit && !kLeftU8) {
      b0_lo = _mm256_and_si256(b0, low7);
      b1_lo = _mm256_and_si256(b1, low7);
      b0_hi = _mm256_and_si256(_mm256_srli_epi16(b0, 7), one8);
      b1_hi = _mm256_and_si256(_mm256_srli_epi16(b1, 7), one8);
    }
#pragma GCC unroll 8
    for (int i = 0; i < kMr; ++i) {
      uint32_t quad;
      std::memcpy(&quad, l + 4 * i, 4);
      if (!kSplit) {
        const __m256i a = _mm256_set1_epi32(static_cast<int32_t>(quad));
        if (kLeftU8) {
          acc[i][0] = _mm256_add_epi32(acc[i][0], DotU7(a, b0, ones));
          acc[i][1] = _mm256_add_epi32(acc[i][1], DotU7(a, b1, ones));
        } else {
          acc[i][0] = _mm256_add_epi32(acc[i][0], DotU7(b0, a, ones));
          acc[i][1] = _mm256_add_epi32(acc[i][1], DotU7(b1, a, ones));
        }
      } else if (kLeftU8) {
        const __m256i lo =
            _mm256_set1_epi32(static_cast<int32_t>(quad & 0x7f7f7f7fu));
        const __m256i hi =
            _mm256_set1_epi32(static_cast<int32_t>((quad >> 7) & 0x01010101u));
        acc[i][0] =
            _mm256_add_epi32(acc[i][0], DotSplit(lo, hi, b0, ones, v128));
        acc[i][1] =
            _mm256_add_epi32(acc[i][1], DotSplit(lo, hi, b1, ones, v128));
      } else {
        const __m256i a = _mm256_set1_epi32(static_cast<int32_t>(quad));
        acc[i][0] =
            _mm256_add_epi32(acc[i][0], DotSplit(b0_lo, b0_hi, a, ones, v128));
        acc[i][1] =
            _mm256_add_epi32(acc[i][1], DotSplit(b1_lo, b1_hi, a, ones, v128));
      }
    }
    l += 4 * kMr;
    if (!kIndirect) r += 4 * kNr;
  }
  StoreTile6x16(acc, e, mr, nr);
}

template <bool kLeftU8, bool kSplit>
void KernelU7(int64_t k_steps, const void* l, const void* r,
              const QTileEpilogue& e, int mr, int nr) {
  TileU7<kLeftU8, false, kSplit>(k_steps, l, static_cast<const uint8_t*>(r),
                                 nullptr, e, mr, nr);
}

template <bool kSplit>
void KernelU7Indirect(int64_t k_steps, const void* l, const uint8_t* r,
                      const int64_t* r_offsets, const QTileEpilogue& e, int mr,
                      int nr) {
  TileU7<false, true, kSplit>(k_steps, l, r, r_offsets, e, mr, nr);
}

}  // namespace

// The operands are int16 by now: the same kernel for either signedness.
QKernel Avx2QKernel() { return {kMr, kNr, 2, &Kernel6x16, &Kernel6x16}; }

QKernel Avx2U7QKernel(bool u8_within_127) {
  QKernel kernel;
  if (u8_within_127) {
    kernel = {kMr, kNr, 4, &KernelU7<true, false>, &KernelU7<false, false>};
    kernel.right_u8_indirect = &KernelU7Indirect<false>;
  } else {
    kernel = {kMr, kNr, 4, &KernelU7<true, true>, &KernelU7<false, true>};
    kernel.right_u8_indirect = &KernelU7Indirect<true>;
  }
  return kernel;
}

}  // namespace dive::qgemm_internal
