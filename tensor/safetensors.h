// File: tensor/safetensors.h
// -----------------------------------------------------------------------------
//
// Reading and writing the safetensors format (the checkpoint format of the
// Hugging Face and PyTorch ecosystems), so weights move both ways between
// this framework and PyTorch:
//
//   [8-byte little-endian header length N][N bytes of JSON header][data]
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets"}
// (offsets relative to the data section) plus an optional "__metadata__"
// object of string values. Supported dtypes: F32, I64, I32, BF16, I8, U8.
//
// Saving is atomic: the file is written to "<path>.tmp", fsync'ed and renamed
// over `path`, so a crash mid-save leaves the previous file intact; it never
// writes through a symlink or over a file that is not a regular file of this
// user (tensor/file_io.h). Loading reads regular files of at most
// kMaxSafetensorsBytes, checked before allocating. Saved
// files carry two CRC-32s in the metadata: "dive.crc32" of the data section
// and "dive.header_crc32" of the header (every name, dtype, shape, data
// offset and metadata value, "dive.crc32" included), so together they cover
// the whole file. Loading verifies each one present, so a flipped byte, an
// edited metadata value or two swapped data offsets are reported instead of
// silently loading damaged weights. Files from other writers (no checksum)
// load normally.
//
// The header is read by tensor/json.h's ParseJson (nlohmann/json, strictly):
// at most 100 MB, nested at most 16 deep, no name twice. Every entry and the
// data's coverage are checked before any tensor is allocated. Every
// malformed input (short file, bad header length, invalid JSON, unknown
// dtype, offsets outside the data or inconsistent with the shape, overlapping
// or unused data) is a DataLoss / InvalidArgument status naming the file and
// the problem.
//
// Example:
//
//   SafetensorsFile file;
//   file.tensors["fc.weight"] = w;
//   file.metadata["epoch"] = "3";
//   absl::Status s = SaveSafetensors("/tmp/model.safetensors", file);
//   absl::StatusOr<SafetensorsFile> back =
//       LoadSafetensors("/tmp/model.safetensors");

#ifndef TENSOR_SAFETENSORS_H_
#define TENSOR_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tensor/tensor.h"

namespace dive {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
  // Set by loading: true when the file carried dive's CRC of the data and it
  // matched, false for files from other writers (nothing could be checked).
  bool checksum_verified = false;
  // Set by loading: true when the file also carried dive's CRC of the header
  // and it matched (files of dive before it wrote one have only the data's):
  // with `checksum_verified`, the whole file is as written.
  bool header_verified = false;
  uint32_t crc32 = 0;  // the data's checksum, when verified
};

// The bytes of `file` as a safetensors file (both checksums added), and the
// CRC-32 of its data section that they record as "dive.crc32" (a name for
// exactly these tensors: a training-state file names the weights it belongs
// with).
struct SerializedSafetensors {
  std::string bytes;
  uint32_t crc32 = 0;
};
SerializedSafetensors SerializeSafetensors(const SafetensorsFile& file);

// Writes `file` atomically to `path`.
absl::Status SaveSafetensors(const std::string& path,
                             const SafetensorsFile& file);

// The largest file LoadSafetensors reads (4 GiB).
inline constexpr uint64_t kMaxSafetensorsBytes = uint64_t{4} << 30;

// Reads and validates `path`, a regular file (a final symlink is followed
// only when `follow_symlink`).
absl::StatusOr<SafetensorsFile> LoadSafetensors(const std::string& path,
                                                bool follow_symlink = true);

// Parses the bytes of a safetensors file; `source` names it in errors.
absl::StatusOr<SafetensorsFile> ParseSafetensors(absl::string_view bytes,
                                                 absl::string_view source);

}  // namespace dive

#endif  // TENSOR_SAFETENSORS_H_
