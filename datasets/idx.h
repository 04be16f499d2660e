// File: datasets/idx.h
// -----------------------------------------------------------------------------
//
// Reading and writing IDX files, the format of MNIST and Fashion-MNIST
// (http://yann.lecun.com/exdb/mnist/). An IDX file is a 4-byte magic number
// (two zero bytes, a type code, the rank), the rank's dimensions as big-endian
// uint32, then the elements in row-major order. Files may be gzip-compressed;
// `ReadIdx` detects compression by the gzip magic (0x1f 0x8b), not by the
// file name.
//
// Only unsigned bytes (type code 0x08) are supported, which is what every
// MNIST-style image and label file uses. The elements stay as bytes: the
// 60000 x 28 x 28 Fashion-MNIST training images take 47 MB in memory rather
// than 188 MB as float32.
//
// Example:
//
//   absl::StatusOr<dive::data::IdxArray> images =
//       dive::data::ReadIdx("/usr/share/datasets/fashion-mnist/"
//                     "train-images-idx3-ubyte.gz");
//   if (!images.ok()) return images.status();
//   images->dims;          // {60000, 28, 28}
//   images->data.size();   // 47040000
//
//   // Small fixtures for tests:
//   absl::Status s = dive::data::WriteIdx("/tmp/x.gz", {2, 2}, {1, 2, 3, 4},
//                                   /*gzip=*/true);
//
// Malformed input is reported as a status naming the file, never a crash:
// NotFound (cannot open), InvalidArgument (not IDX, bad rank or dimensions),
// Unimplemented (a valid type code other than 0x08) and DataLoss (truncated
// payload, trailing bytes, corrupt gzip stream).

#ifndef DATASETS_IDX_H_
#define DATASETS_IDX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace dive::data {

// The contents of an IDX file of unsigned bytes: dimensions, outermost first,
// and the elements in row-major order.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

// The largest rank `ReadIdx` and `WriteIdx` accept.
inline constexpr int kMaxIdxRank = 4;

// The largest payload ReadIdx accepts (4 GiB; Fashion-MNIST's largest file
// holds 47 MB). A gzip file may also declare at most about 1000 times its
// compressed size; both are checked before allocating.
inline constexpr uint64_t kMaxIdxBytes = uint64_t{4} << 30;

// ReadIdx()
//
// Reads the IDX file at `path`, gzip-compressed or raw. Validates the magic
// number, the type code (0x08 only), the rank (1 to 4), the dimensions
// (non-zero, with a product that fits in memory sizes) and that the payload
// is exactly as long as the dimensions say. Every error message names `path`.
absl::StatusOr<IdxArray> ReadIdx(const std::string& path);

// WriteIdx()
//
// Writes `data` with dimensions `dims` as an IDX file of unsigned bytes,
// gzip-compressed when `gzip` is true. Returns InvalidArgument when the rank
// is not 1 to 4, a dimension is not in [1, 2^32), or the element count does
// not match `data.size()`; returns an error naming `path` when the file
// cannot be written.
absl::Status WriteIdx(const std::string& path, absl::Span<const int64_t> dims,
                      absl::Span<const uint8_t> data, bool gzip);

}  // namespace dive::data

#endif  // DATASETS_IDX_H_
