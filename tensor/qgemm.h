// File: tensor/qgemm.h
// -----------------------------------------------------------------------------
//
// Int8 GEMM for quantized inference: uint8 activations times int8 weights,
// summed exactly in int32, with the requantization fused into the output
// tile (applied to the sums while they are in registers, before anything is
// stored):
//
//   acc[i, j] = sum over p of (A[i, p] - a_zero_point) * B[p, j]
//   C[i, j]   = requant_j(acc[i, j])                   (QRequantization)
//
// A [m, k] uint8 (per-tensor zero point: PyTorch's and ONNX's quint8
// activations), B [k, n] int8 with zero point 0 (symmetric weights, one
// scale per output channel j). B is packed once for one kernel path
// (PackQGemmWeights), with its per-channel sums: the activations' zero point
// is then a per-channel correction of the sums of the raw bytes,
// acc = sum A * B - a_zero_point * sum_p B[p, j] (what FBGEMM does), so the
// kernels multiply the bytes as they are. tensor/qconv.h builds the int8
// convolution on the same kernels.
//
// The kernel paths (QGemmPath), chosen at run time from cpuid (tensor/cpu.h):
//   avx512_vnni  VPDPBUSD on zmm (AVX512-VNNI), 6 x 64 tiles
//   avx_vnni     VPDPBUSD's VEX form on ymm (AVX-VNNI), 6 x 16 tiles
//   avx2         VPMADDWD on operands widened to int16, 6 x 16 tiles (exact;
//                VPMADDUBSW would saturate its u8 * s8 pair sums)
//   avx2_u7      for activations quantized to 7 bits (0..127, PyTorch's
//                reduce_range): VPMADDUBSW + VPMADDWD with ones (FBGEMM's
//                AVX2 kernel) on the VNNI paths' layout, 6 x 16 tiles; exact
//                because a u8 * s8 pair sum is then within 2 * 127 * 128 <
//                2^15. QGemm and QConv2d check every call's activations (and
//                the convolution's zero point, its padding): where a byte
//                exceeds 127 they run the same layout with each byte split
//                into its low 7 bits and its high bit, exact and about half
//                as fast. Never the default; DefaultQGemmPath(true) gives it
//                where the default would be avx2
//   amx          TDPBUSD on 32 x 32 tiles (AMX-INT8); NOT YET RUN ON AMX
//                HARDWARE, tested with emulated tile instructions only, so
//                never the default: only where asked for, and only once it
//                has passed a self-check in the process
//                (QGemmPathSupported)
//   generic      portable C++
// Every path computes the same integers and the same requantized values:
// the scale product is taken in double (exact for any int32 times a float)
// and rounded half to even, so results are bit for bit those of a double
// reference. Errors in the arguments a caller reads from files (shapes,
// scales, zero points, k beyond the exact range) are returned as a Status;
// null pointers are CHECK failures.
//
// Example (a Linear layer on uint8 activations, uint8 output with ReLU):
//
//   absl::StatusOr<dive::QPackedWeights> w = dive::PackQGemmWeights(
//       dive::DefaultQGemmPath(), /*k=*/in, /*n=*/out, weight, /*ldb=*/in,
//       /*transposed=*/true);                    // PyTorch's [out, in]
//   dive::QRequantization rq;
//   rq.scale = multipliers;                      // [out]: s_x * s_w / s_y
//   rq.bias = bias_int32;                        // [out], in units s_x * s_w
//   rq.zero_point = y_zero_point;
//   rq.relu = true;
//   absl::Status s = dive::QGemm(batch, x, in, x_zero_point, *w, rq, y, out);

#ifndef TENSOR_QGEMM_H_
#define TENSOR_QGEMM_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dive {

namespace qconv_internal {
struct OneDnnQConvCache;  // tensor/qconv_onednn.h
}  // namespace qconv_internal

enum class QGemmPath { kGeneric, kAvx2, kAvx2U7, kAvxVnni, kAvx512Vnni, kAmx };

inline constexpr QGemmPath kAllQGemmPaths[] = {
    QGemmPath::kGeneric, QGemmPath::kAvx2,       QGemmPath::kAvx2U7,
    QGemmPath::kAvxVnni, QGemmPath::kAvx512Vnni, QGemmPath::kAmx};

// "generic", "avx2", "avx2_u7", "avx_vnni", "avx512_vnni", "amx".
absl::string_view QGemmPathName(QGemmPath path);
// The path of that name; InvalidArgument for any other.
absl::StatusOr<QGemmPath> ParseQGemmPath(absl::string_view name);

// OK where this CPU (and the operating system) can run `path`, else
// FailedPrecondition naming what is missing. The AMX path also checks its
// kernel once per process, on the first call that asks about it: int32
// products with edges in every dimension, uint8 on either side, against
// the generic path's; where they differ it is refused, saying so. In a
// binary that links the testonly emulated AMX kernel
// (//tensor:qgemm_kernels_amx_emulated), the AMX path runs it and is present
// wherever AVX512-VNNI is.
absl::Status QGemmPathSupported(QGemmPath path);

// The fastest path this CPU has below the AMX one, within what DIVE_ISA
// allows (tensor/cpu.h's ActiveIsa: generic gives generic, avx2 the 256-bit
// paths), unless the environment variable DIVE_QGEMM_PATH names a path the
// CPU has (so that AVX2-only CPUs can be measured on one with VNNI:
// DIVE_QGEMM_PATH=avx2); a bad value is reported once (LOG(ERROR)) and
// ignored. `activations_7bit`: the caller's activations are quantized to
// 0..127 (reduce_range), so that avx2 gives way to avx2_u7.
QGemmPath DefaultQGemmPath(bool activations_7bit = false);

// The largest k: every sum of k products of a uint8 and an int8, and the
// zero-point correction, stays within +-2^30, so that adding a bias of up
// to 2^30 cannot overflow int32.
inline constexpr int64_t kQGemmMaxK = 32768;
inline constexpr int32_t kQGemmMaxBias = 1 << 30;

// What becomes of the exact sums acc (per output channel ch):
//   kInt32  acc + bias[ch]
//   kFloat  float(double(scale[ch]) * (acc + bias[ch])), then max(., 0)
//           when relu
//   kUint8  clamp(round_half_even(double(scale[ch]) * (acc + bias[ch])) +
//           zero_point, relu ? zero_point : 0, 255)
// The output buffer holds int32_t, float or uint8_t accordingly.
enum class QOutputType { kUint8, kInt32, kFloat };

struct QRequantization {
  QOutputType output = QOutputType::kUint8;
  const float* scale = nullptr;   // [channels], > 0 and finite (not kInt32)
  const int32_t* bias = nullptr;  // [channels], |bias| <= 2^30, or none
  int32_t zero_point = 0;         // kUint8's output zero point, 0..255
  bool relu = false;              // kUint8 and kFloat only
};

// Int8 weights packed for one kernel path, with their per-channel sums.
// Copies share the packed bytes. Made by PackQGemmWeights or (for
// convolution) PackQConv2dWeights in tensor/qconv.h.
class QPackedWeights {
 public:
  enum class Role { kNone, kGemm, kConv2d };

  QPackedWeights() = default;

  QGemmPath path() const { return path_; }
  Role role() const { return role_; }
  int64_t channels() const { return channels_; }  // n (GEMM), OC (conv)
  int64_t k() const { return k_; }
  // Convolution only: the kernel's input channels and size.
  int64_t conv_c() const { return conv_c_; }
  int64_t conv_kh() const { return conv_kh_; }
  int64_t conv_kw() const { return conv_kw_; }

  // Internal to the kernels (qgemm.cc, qconv.cc).
  const uint8_t* data() const { return data_.get(); }
  // Convolution on the quads paths: the weights again, k ordered (channel
  // group of 4, kernel row, kernel column) for the stride-1 convolution
  // without im2col; null elsewhere.
  const uint8_t* implicit_data() const { return implicit_data_.get(); }
  const std::vector<int32_t>& sums() const { return sums_; }
  // Convolution on the avx512_vnni path: the weights and primitives of the
  // oneDNN int8 convolution (tensor/qconv_onednn.h); null elsewhere.
  qconv_internal::OneDnnQConvCache* onednn() const { return onednn_.get(); }

 private:
  friend struct QPackedWeightsAccess;
  QGemmPath path_ = QGemmPath::kGeneric;
  Role role_ = Role::kNone;
  int64_t channels_ = 0, k_ = 0;
  int64_t conv_c_ = 0, conv_kh_ = 0, conv_kw_ = 0;
  std::shared_ptr<uint8_t> data_;  // 64-byte aligned panels
  std::shared_ptr<uint8_t> implicit_data_;
  std::vector<int32_t> sums_;  // [channels]: sum over k of the weights
  std::shared_ptr<qconv_internal::OneDnnQConvCache> onednn_;
};

// Packs B [k, n] (b[p * ldb + j]), or, when `transposed`, B stored as
// [n, k] (b[j * ldb + p]: PyTorch's Linear weight [out, in]), for `path`.
// InvalidArgument for k or n < 1, k > kQGemmMaxK or ldb too small;
// FailedPrecondition when the CPU lacks `path`.
absl::StatusOr<QPackedWeights> PackQGemmWeights(QGemmPath path, int64_t k,
                                                int64_t n, const int8_t* b,
                                                int64_t ldb, bool transposed);

// C [m, n] (row stride ldc, in elements of rq.output's type) = the
// requantized A [m, k] (row stride lda) times the packed B, on B's path,
// the rows split between OpenMP threads where worth it. InvalidArgument for
// m < 1, lda < k, ldc < n, a_zero_point outside 0..255, and the
// QRequantization errors (a scale <= 0, NaN or infinite; zero_point outside
// 0..255; a bias beyond 2^30; relu with kInt32); FailedPrecondition when the
// CPU lacks B's path.
absl::Status QGemm(int64_t m, const uint8_t* a, int64_t lda,
                   int32_t a_zero_point, const QPackedWeights& b,
                   const QRequantization& rq, void* c, int64_t ldc);

}  // namespace dive

#endif  // TENSOR_QGEMM_H_
