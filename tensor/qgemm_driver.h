// File: tensor/qgemm_driver.h
// -----------------------------------------------------------------------------
//
// Internal to //tensor:qgemm (qgemm.cc, qconv.cc): what the int8 GEMM and
// convolution share around the micro-kernels of tensor/qgemm_kernels.h: each
// path's kernel and packed layout, the packers, the per-channel epilogue
// data (bias and zero-point correction folded into one int32, scales in
// double) and the loop over a block of tiles.
//
// C = L * R: L the broadcast operand, packed in panels of the kernel's mr
// rows, R the vector operand, in panels of nr columns; k padded with zeros
// to the kernel's k_unit. QGemm has the activations as L (channels along
// C's columns), QConv2d the weights (channels along C's rows, so that the
// output is NCHW as it leaves the tile).

#ifndef TENSOR_QGEMM_DRIVER_H_
#define TENSOR_QGEMM_DRIVER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "tensor/qgemm.h"
#include "tensor/qgemm_kernels.h"

namespace dive::qgemm_internal {

inline int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t RoundUp(int64_t x, int64_t unit) {
  return CeilDiv(x, unit) * unit;
}

enum class Layout {
  kQuads,  // [k / 4][rows or cols][4] bytes
  kPairs,  // [k / 2][rows or cols][2] int16
  kAmx,    // L: [mr][k] bytes; R: quads
};

struct PathInfo {
  QKernel kernel;
  Layout layout;

  int64_t KPad(int64_t k) const { return RoundUp(k, kernel.k_unit); }
  int64_t ElementBytes() const { return layout == Layout::kPairs ? 2 : 1; }
  int64_t LeftPanelBytes(int64_t k) const {
    return kernel.mr * KPad(k) * ElementBytes();
  }
  int64_t RightPanelBytes(int64_t k) const {
    return kernel.nr * KPad(k) * ElementBytes();
  }
  int64_t KSteps(int64_t k) const { return KPad(k) / kernel.k_unit; }
};

// The kernel and layout of `path`, which the CPU must have, exact for any
// uint8 operand.
const PathInfo& PathOf(QGemmPath path);

// The same for a call whose uint8 operand (every byte the kernel reads,
// padding included) is within 0..127 where `within_127`: the avx2_u7 path's
// VPMADDUBSW kernels then; PathOf(path) otherwise and on every other path.
const PathInfo& PathFor(QGemmPath path, bool within_127);

// Whether every byte of `rows` rows of `cols` bytes (row r at p + r * ld)
// is at most 127.
bool AllWithin127(const uint8_t* p, int64_t rows, int64_t cols, int64_t ld);

// 64-byte aligned bytes.
std::shared_ptr<uint8_t> AlignedBuffer(int64_t bytes);

// Per-thread scratch that only grows (one per slot).
enum ScratchSlot { kLeftScratch, kRightScratch, kRowsScratch, kScratchSlots };
uint8_t* ThreadScratch(ScratchSlot slot, int64_t bytes);

// One L panel from `rows` (<= mr) rows of k elements, row i at
// src + i * lds; rows past `rows` and k past k are zero.
template <typename T>
void PackLeftPanel(const PathInfo& path, const T* src, int64_t lds, int rows,
                   int64_t k, uint8_t* out);

// One group of R along k (4 rows of it for quads and AMX, 2 for pairs) from
// `rows[t]` (`cols` <= nr elements each, or null for a row of zeros) into
// `out`, the group's place in the panel (nr columns; columns past `cols`
// zero).
template <typename T>
void PackRightGroup(const PathInfo& path, const T* const* rows, int cols,
                    uint8_t* out);

// How many rows of R one group holds: 2 for pairs, else 4.
inline int RightGroupRows(const PathInfo& path) {
  return path.layout == Layout::kPairs ? 2 : 4;
}
inline int64_t RightGroupBytes(const PathInfo& path) {
  return path.kernel.nr * 4;  // 4 bytes or 2 int16 per column
}

// Checks rq for `channels` channels (InvalidArgument naming the first bad
// value) and builds the epilogue's per-channel data:
//   offset[ch] = bias[ch] - a_zero_point * sums[ch], scale[ch] in double.
struct ChannelData {
  std::vector<int32_t> offset;
  std::vector<double> scale;
};
absl::Status MakeChannelData(const QRequantization& rq, int64_t channels,
                             const std::vector<int32_t>& sums,
                             int32_t a_zero_point, ChannelData* out);

// The epilogue of C [.., ..] (row stride ldc elements) at its element
// (0, 0), whose channel is 0 (channel_is_row: rows are channels).
QTileEpilogue MakeEpilogue(const QRequantization& rq, const ChannelData& data,
                           bool channel_is_row, void* c, int64_t ldc);

// Bytes per element of C.
int64_t OutputBytes(QOutputType type);

// C[0 : m, 0 : n] = epilogue(L * R) for L packed in panels of mr rows (m
// rows) and R in panels of nr columns (n columns), the whole of k, on one
// thread (which has called the kernel's `enter`). `e` is at C[0, 0], whose
// channel is the first of e.offset and e.scale.
struct Block {
  const PathInfo* path;
  bool left_u8;
  int64_t k;
  const uint8_t* l;
  int64_t m;
  const uint8_t* r;
  int64_t n;
  QTileEpilogue e;
  int64_t c_bytes;  // per element of C
};
void RunBlock(const Block& b);

// Calls the path's enter/leave around `fn` when it has them.
template <typename Fn>
void WithKernel(const PathInfo& path, Fn fn) {
  if (path.kernel.enter != nullptr) path.kernel.enter();
  fn();
  if (path.kernel.leave != nullptr) path.kernel.leave();
}

}  // namespace dive::qgemm_internal

namespace dive {

// Access to QPackedWeights' fields for the packers.
struct QPackedWeightsAccess {
  static QPackedWeights Make(QGemmPath path, QPackedWeights::Role role,
                             int64_t channels, int64_t k,
                             std::shared_ptr<uint8_t> data,
                             std::vector<int32_t> sums) {
    QPackedWeights w;
    w.path_ = path;
    w.role_ = role;
    w.channels_ = channels;
    w.k_ = k;
    w.data_ = std::move(data);
    w.sums_ = std::move(sums);
    return w;
  }
  static void SetConv(QPackedWeights* w, int64_t c, int64_t kh, int64_t kw,
                      std::shared_ptr<uint8_t> implicit_data) {
    w->conv_c_ = c;
    w->conv_kh_ = kh;
    w->conv_kw_ = kw;
    w->implicit_data_ = std::move(implicit_data);
  }
  static void SetOneDnn(
      QPackedWeights* w,
      std::shared_ptr<qconv_internal::OneDnnQConvCache> onednn) {
    w->onednn_ = std::move(onednn);
  }
};
}  // namespace dive

#endif  // TENSOR_QGEMM_DRIVER_H_
