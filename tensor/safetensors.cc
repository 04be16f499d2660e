#include "tensor/safetensors.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tensor/file_io.h"
#include "tensor/json.h"
#include "tensor/text.h"

namespace dive {
namespace {

// The CRC-32 of the data section, and that of the header (which records the
// first, so the two cover the whole file).
constexpr char kChecksumKey[] = "dive.crc32";
constexpr char kHeaderChecksumKey[] = "dive.header_crc32";
// Header larger than this is rejected before allocating (the reference
// implementation uses the same 100 MB bound).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// The format nests 3 deep (header, tensor entry, shape); more is refused
// while reading, before anything is built.
constexpr int kMaxHeaderDepth = 16;

const char* DTypeCode(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "F32";
    case DType::kInt64:
      return "I64";
    case DType::kInt32:
      return "I32";
    case DType::kBfloat16:
      return "BF16";
    case DType::kInt8:
      return "I8";
    case DType::kUint8:
      return "U8";
  }
  return "?";
}

bool ParseDTypeCode(absl::string_view code, DType* dtype) {
  for (DType d : {DType::kFloat32, DType::kInt64, DType::kInt32,
                  DType::kBfloat16, DType::kInt8, DType::kUint8}) {
    if (code == DTypeCode(d)) {
      *dtype = d;
      return true;
    }
  }
  return false;
}

uint32_t Crc32(absl::string_view bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes uInt lengths; feed large buffers in chunks.
  while (!bytes.empty()) {
    const size_t n = std::min<size_t>(bytes.size(), 1u << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), n);
    bytes.remove_prefix(n);
  }
  return static_cast<uint32_t>(crc);
}

// A tensor's entry in the header.
struct TensorEntry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;  // data_offsets
};

// The JSON header of `entries` (in name order) and `metadata`, as the writer
// spells it. The header checksum is the CRC-32 of this text without its own
// key: the reader rebuilds it from what it parsed, so any change to a name,
// dtype, shape, offset or metadata value changes the text.
std::string HeaderJson(const std::vector<TensorEntry>& entries,
                       const std::map<std::string, std::string>& metadata) {
  OrderedJson header = OrderedJson::object();
  OrderedJson& meta = header["__metadata__"] = OrderedJson::object();
  for (const auto& [k, v] : metadata) meta[k] = v;
  for (const TensorEntry& e : entries) {
    OrderedJson shape = OrderedJson::array();
    for (const int64_t d : e.shape.dims()) shape.push_back(d);
    OrderedJson& entry = header[e.name] = OrderedJson::object();
    entry["dtype"] = DTypeCode(e.dtype);
    entry["shape"] = std::move(shape);
    entry["data_offsets"] = OrderedJson::array({e.begin, e.end});
  }
  return JsonText(header);
}

// OK when `metadata` has no header checksum (files of other writers, and of
// dive before it wrote one) or when the checksum matches the header rebuilt
// from `entries` and `metadata`; a header checksum also requires the data's.
absl::Status VerifyHeaderChecksum(std::vector<TensorEntry> entries,
                                  std::map<std::string, std::string> metadata) {
  auto it = metadata.find(kHeaderChecksumKey);
  if (it == metadata.end()) return absl::OkStatus();
  uint32_t expected = 0;
  if (!absl::SimpleAtoi(it->second, &expected)) {
    return absl::DataLossError("header checksum in metadata is not a number");
  }
  if (metadata.count(kChecksumKey) == 0) {
    return absl::DataLossError(
        "the header has a checksum but the data has none (dive.crc32 was "
        "removed)");
  }
  metadata.erase(it);
  std::sort(entries.begin(), entries.end(),
            [](const TensorEntry& a, const TensorEntry& b) {
              return a.name < b.name;
            });
  const uint32_t actual = Crc32(HeaderJson(entries, metadata));
  if (actual != expected) {
    return absl::DataLossError(absl::StrCat(
        "header checksum mismatch (stored ", expected, ", computed ", actual,
        "): the header (metadata, tensor names, dtypes, shapes or data "
        "offsets) was changed or damaged"));
  }
  return absl::OkStatus();
}

}  // namespace

SerializedSafetensors SerializeSafetensors(const SafetensorsFile& file) {
  // Data section: tensors in name order, each contiguous.
  std::string data;
  std::vector<TensorEntry> entries;
  for (const auto& [name, tensor] : file.tensors) {
    CHECK(tensor.defined())
        << "SerializeSafetensors: tensor '" << name << "' is undefined";
    CHECK(name != "__metadata__")
        << "SerializeSafetensors: \"__metadata__\" is not a tensor name";
    const Tensor c = tensor.Contiguous();
    const size_t nbytes = c.numel() * DTypeSize(c.dtype());
    const uint64_t begin = data.size();
    data.append(static_cast<const char*>(c.raw_data()), nbytes);
    entries.push_back({name, c.dtype(), c.shape(), begin, data.size()});
  }
  std::map<std::string, std::string> metadata = file.metadata;
  metadata.erase(kHeaderChecksumKey);
  const uint32_t crc = Crc32(data);
  metadata[kChecksumKey] = absl::StrCat(crc);
  // The header's checksum covers the header it is then added to.
  metadata[kHeaderChecksumKey] =
      absl::StrCat(Crc32(HeaderJson(entries, metadata)));
  std::string header = HeaderJson(entries, metadata);
  header.append((8 - header.size() % 8) % 8, ' ');  // align data to 8 bytes
  char len[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);

  SerializedSafetensors out;
  out.crc32 = crc;
  out.bytes.reserve(8 + header.size() + data.size());
  out.bytes.append(len, 8);
  out.bytes.append(header);
  out.bytes.append(data);
  return out;
}

absl::Status SaveSafetensors(const std::string& path,
                             const SafetensorsFile& file) {
  const SerializedSafetensors bytes = SerializeSafetensors(file);
  absl::StatusOr<AtomicFileWriter> out = AtomicFileWriter::Create(path);
  if (!out.ok()) return out.status();
  absl::Status st = out->Write(bytes.bytes);
  if (st.ok()) st = out->Commit();
  return st;
}

absl::StatusOr<SafetensorsFile> ParseSafetensors(absl::string_view bytes,
                                                 absl::string_view source) {
  auto fail = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat(source, ": ", what));
  };
  if (bytes.size() < 8) {
    return fail(absl::StrCat("file is ", bytes.size(),
                             " bytes, too short for a safetensors header"));
  }
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) {
    header_len |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i]))
                  << (8 * i);
  }
  if (header_len > kMaxHeaderBytes || header_len > bytes.size() - 8) {
    return fail(absl::StrCat("header length ", header_len, " exceeds the ",
                             bytes.size() - 8, " bytes after it"));
  }
  absl::StatusOr<Json> header =
      ParseJson(bytes.substr(8, header_len), kMaxHeaderDepth);
  if (!header.ok()) {
    return fail(
        absl::StrCat("invalid JSON header: ", header.status().message()));
  }
  if (!header->is_object()) return fail("header is not a JSON object");
  const absl::string_view data = bytes.substr(8 + header_len);

  // Every entry is checked, and the data's coverage, before any tensor is
  // allocated: together they are at most the data section.
  SafetensorsFile out;
  std::vector<TensorEntry> entries;
  for (const auto& item : header->items()) {
    const std::string& name = item.key();
    const Json& entry = item.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) return fail("__metadata__ is not an object");
      for (const auto& field : entry.items()) {
        if (!field.value().is_string()) {
          return fail(absl::StrCat("metadata value '", Printable(field.key()),
                                   "' is not a string"));
        }
        out.metadata[field.key()] = field.value().get<std::string>();
      }
      continue;
    }
    const std::string where = absl::StrCat("tensor '", Printable(name), "'");
    if (!entry.is_object()) return fail(where + " is not an object");
    const auto dtype = entry.find("dtype");
    const auto shape = entry.find("shape");
    const auto offsets = entry.find("data_offsets");
    DType dt;
    if (dtype == entry.end() || !dtype->is_string()) {
      return fail(where + " has no dtype");
    }
    if (!ParseDTypeCode(dtype->get_ref<const std::string&>(), &dt)) {
      return fail(absl::StrCat(where, " has unsupported dtype '",
                               Printable(dtype->get_ref<const std::string&>()),
                               "' (supported: F32, I64, I32)"));
    }
    if (shape == entry.end() || !shape->is_array() || shape->size() > 8) {
      return fail(where + " has no valid shape (an array of at most 8 dims)");
    }
    Shape s;
    uint64_t numel = 1;
    for (const Json& d : *shape) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t{1} << 40)) {
        return fail(absl::StrCat(where, " has an invalid dimension ",
                                 Printable(JsonText(d), 40),
                                 " (dimensions are integers up to 2^40)"));
      }
      const uint64_t n = d.get<uint64_t>();
      if (n != 0 && numel > (uint64_t{1} << 40) / n) {
        return fail(where + " has too many elements");
      }
      numel *= n;
      s.push_back(static_cast<int64_t>(n));
    }
    if (offsets == entry.end() || !offsets->is_array() ||
        offsets->size() != 2 || !offsets->front().is_number_unsigned() ||
        !offsets->back().is_number_unsigned()) {
      return fail(where + " has no valid data_offsets");
    }
    const uint64_t begin = offsets->front().get<uint64_t>(),
                   end = offsets->back().get<uint64_t>();
    if (begin > end || end > data.size()) {
      return fail(absl::StrCat(where, " data_offsets [", begin, ", ", end,
                               "] are outside the ", data.size(),
                               "-byte data section"));
    }
    if (end - begin != numel * DTypeSize(dt)) {
      return fail(absl::StrCat(where, " has ", end - begin, " bytes but shape ",
                               s.ToString(), " of ", DTypeCode(dt), " needs ",
                               numel * DTypeSize(dt)));
    }
    entries.push_back({name, dt, s, begin, end});
  }
  // The data must be exactly covered, without overlaps or holes (so no two
  // entries share bytes, and the tensors add up to the data section).
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const TensorEntry& e : entries) ranges.emplace_back(e.begin, e.end);
  std::sort(ranges.begin(), ranges.end());
  uint64_t at = 0;
  for (const auto& [begin, end] : ranges) {
    if (begin != at) {
      return fail(absl::StrCat("tensor data overlaps or leaves a gap at byte ",
                               std::min(begin, at)));
    }
    at = end;
  }
  if (at != data.size()) {
    return fail(absl::StrCat(data.size() - at,
                             " trailing bytes after the last tensor"));
  }
  if (absl::Status st = VerifyHeaderChecksum(entries, out.metadata); !st.ok()) {
    return fail(st.message());
  }
  out.header_verified = out.metadata.erase(kHeaderChecksumKey) > 0;
  auto crc = out.metadata.find(kChecksumKey);
  if (crc != out.metadata.end()) {
    uint32_t expected = 0;
    if (!absl::SimpleAtoi(crc->second, &expected)) {
      return fail("checksum in metadata is not a number");
    }
    const uint32_t actual = Crc32(data);
    if (actual != expected) {
      return fail(absl::StrCat("checksum mismatch (stored ", expected,
                               ", computed ", actual,
                               "): the file is corrupted"));
    }
    out.metadata.erase(crc);
    out.checksum_verified = true;
    out.crc32 = actual;
  }
  for (const TensorEntry& e : entries) {
    Tensor t = Tensor::Empty(e.shape, e.dtype);
    if (e.end > e.begin) {
      std::memcpy(t.raw_data(), data.data() + e.begin, e.end - e.begin);
    }
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

absl::StatusOr<SafetensorsFile> LoadSafetensors(const std::string& path,
                                                bool follow_symlink) {
  absl::StatusOr<std::string> bytes =
      ReadRegularFile(path, "checkpoint", kMaxSafetensorsBytes, follow_symlink);
  if (!bytes.ok()) return bytes.status();
  return ParseSafetensors(*bytes, path);
}

}  // namespace dive
