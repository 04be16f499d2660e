#include "tensor/safetensors.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

const char* DTypeCode(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "F32";
    case DType::kInt64:
      return "I64";
    case DType::kInt32:
      return "I32";
  }
  return "?";
}

bool ParseDTypeCode(absl::string_view code, DType* dtype) {
  for (DType d : {DType::kFloat32, DType::kInt64, DType::kInt32}) {
    if (code == DTypeCode(d)) {
      *dtype = d;
      return true;
    }
  }
  return false;
}

// ---- A minimal JSON reader for the safetensors header -----------------------
// Values are strings, non-negative integers, arrays and objects: exactly what
// the format uses. Anything else is an error.

struct Json {
  enum class Kind { kString, kNumber, kArray, kObject } kind;
  std::string str;
  uint64_t num = 0;
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> fields;
};

class JsonParser {
 public:
  explicit JsonParser(absl::string_view s) : s_(s) {}

  absl::StatusOr<Json> ParseDocument() {
    Json v;
    if (absl::Status st = ParseValue(&v, 0); !st.ok()) return st;
    SkipSpace();
    if (pos_ != s_.size()) return Error("trailing characters after JSON");
    return v;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " at header byte ", pos_));
  }
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' ||
                                s_[pos_] == '\t' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Consume(char c) {
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  absl::Status ParseValue(Json* v, int depth) {
    if (depth > 16) return Error("JSON nested too deeply");
    SkipSpace();
    if (pos_ >= s_.size()) return Error("unexpected end of JSON");
    const char c = s_[pos_];
    if (c == '"') {
      v->kind = Json::Kind::kString;
      return ParseString(&v->str);
    }
    if (c >= '0' && c <= '9') {
      v->kind = Json::Kind::kNumber;
      uint64_t n = 0;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
        const uint64_t d = s_[pos_++] - '0';
        if (n > (std::numeric_limits<uint64_t>::max() - d) / 10) {
          return Error("integer overflow in JSON");
        }
        n = n * 10 + d;
      }
      v->num = n;
      return absl::OkStatus();
    }
    if (c == '[') {
      ++pos_;
      v->kind = Json::Kind::kArray;
      if (Consume(']')) return absl::OkStatus();
      do {
        v->items.emplace_back();
        if (absl::Status st = ParseValue(&v->items.back(), depth + 1);
            !st.ok()) {
          return st;
        }
      } while (Consume(','));
      return Consume(']') ? absl::OkStatus() : Error("expected ']'");
    }
    if (c == '{') {
      ++pos_;
      v->kind = Json::Kind::kObject;
      if (Consume('}')) return absl::OkStatus();
      do {
        SkipSpace();
        std::string key;
        if (absl::Status st = ParseString(&key); !st.ok()) return st;
        if (!Consume(':')) return Error("expected ':'");
        v->fields.emplace_back(std::move(key), Json{});
        if (absl::Status st = ParseValue(&v->fields.back().second, depth + 1);
            !st.ok()) {
          return st;
        }
      } while (Consume(','));
      return Consume('}') ? absl::OkStatus() : Error("expected '}'");
    }
    return Error(absl::StrCat("unexpected character '",
                              Printable(std::string(1, c)), "' in JSON"));
  }

  absl::Status ParseString(std::string* out) {
    if (pos_ >= s_.size() || s_[pos_] != '"') return Error("expected string");
    ++pos_;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c == '\\') {
        if (pos_ >= s_.size()) break;
        const char e = s_[pos_++];
        switch (e) {
          case '"':
          case '\\':
          case '/':
            c = e;
            break;
          case 'n':
            c = '\n';
            break;
          case 't':
            c = '\t';
            break;
          case 'r':
            c = '\r';
            break;
          case 'b':
            c = '\b';
            break;
          case 'f':
            c = '\f';
            break;
          case 'u': {
            uint32_t code = 0;
            if (pos_ + 4 > s_.size() ||
                !absl::SimpleHexAtoi(s_.substr(pos_, 4), &code)) {
              return Error("bad \\u escape");
            }
            pos_ += 4;
            if (code >= 0x80) return Error("non-ASCII \\u escape");
            c = static_cast<char>(code);
            break;
          }
          default:
            return Error("bad escape in string");
        }
      }
      out->push_back(c);
    }
    if (pos_ >= s_.size()) return Error("unterminated string");
    ++pos_;
    return absl::OkStatus();
  }

  absl::string_view s_;
  size_t pos_ = 0;
};

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
  std::vector<std::string> meta;
  for (const auto& [k, v] : metadata) {
    meta.push_back(absl::StrCat(JsonQuote(k), ":", JsonQuote(v)));
  }
  std::vector<std::string> parts = {
      absl::StrCat("\"__metadata__\":{", absl::StrJoin(meta, ","), "}")};
  for (const TensorEntry& e : entries) {
    parts.push_back(
        absl::StrCat(JsonQuote(e.name), ":{\"dtype\":\"", DTypeCode(e.dtype),
                     "\",\"shape\":[", absl::StrJoin(e.shape.dims(), ","),
                     "],\"data_offsets\":[", e.begin, ",", e.end, "]}"));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
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
    const Tensor c = tensor.Contiguous();
    const size_t nbytes = c.numel() * DTypeSize(c.dtype());
    const uint64_t begin = data.size();
    data.append(
        static_cast<const char*>(static_cast<const void*>(
            c.dtype() == DType::kFloat32 ? (const void*)c.data<float>()
            : c.dtype() == DType::kInt64 ? (const void*)c.data<int64_t>()
                                         : (const void*)c.data<int32_t>())),
        nbytes);
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
      JsonParser(bytes.substr(8, header_len)).ParseDocument();
  if (!header.ok()) {
    return fail(
        absl::StrCat("invalid JSON header: ", header.status().message()));
  }
  if (header->kind != Json::Kind::kObject) {
    return fail("header is not a JSON object");
  }
  const absl::string_view data = bytes.substr(8 + header_len);

  SafetensorsFile out;
  std::vector<TensorEntry> entries;
  for (const auto& [name, entry] : header->fields) {
    if (name == "__metadata__") {
      if (entry.kind != Json::Kind::kObject)
        return fail("__metadata__ is not an object");
      for (const auto& [k, v] : entry.fields) {
        if (v.kind != Json::Kind::kString) {
          return fail(absl::StrCat("metadata value '", Printable(k),
                                   "' is not a string"));
        }
        out.metadata[k] = v.str;
      }
      continue;
    }
    const std::string where = absl::StrCat("tensor '", Printable(name), "'");
    if (entry.kind != Json::Kind::kObject)
      return fail(where + " is not an object");
    const Json *dtype = nullptr, *shape = nullptr, *offsets = nullptr;
    for (const auto& [k, v] : entry.fields) {
      if (k == "dtype")
        dtype = &v;
      else if (k == "shape")
        shape = &v;
      else if (k == "data_offsets")
        offsets = &v;
    }
    DType dt;
    if (dtype == nullptr || dtype->kind != Json::Kind::kString) {
      return fail(where + " has no dtype");
    }
    if (!ParseDTypeCode(dtype->str, &dt)) {
      return fail(absl::StrCat(where, " has unsupported dtype '",
                               Printable(dtype->str),
                               "' (supported: F32, I64, I32)"));
    }
    if (shape == nullptr || shape->kind != Json::Kind::kArray ||
        shape->items.size() > 8) {
      return fail(where + " has no valid shape (an array of at most 8 dims)");
    }
    Shape s;
    uint64_t numel = 1;
    for (const Json& d : shape->items) {
      if (d.kind != Json::Kind::kNumber || d.num > (uint64_t{1} << 40)) {
        return fail(where + " has an invalid dimension");
      }
      if (d.num != 0 && numel > (uint64_t{1} << 40) / d.num) {
        return fail(where + " has too many elements");
      }
      numel *= d.num;
      s.push_back(static_cast<int64_t>(d.num));
    }
    if (offsets == nullptr || offsets->kind != Json::Kind::kArray ||
        offsets->items.size() != 2 ||
        offsets->items[0].kind != Json::Kind::kNumber ||
        offsets->items[1].kind != Json::Kind::kNumber) {
      return fail(where + " has no valid data_offsets");
    }
    const uint64_t begin = offsets->items[0].num, end = offsets->items[1].num;
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
    if (out.tensors.count(name) > 0) {
      return fail(absl::StrCat(where, " appears twice"));
    }
    Tensor t = Tensor::Empty(s, dt);
    if (numel > 0) {
      std::memcpy(dt == DType::kFloat32 ? (void*)t.data<float>()
                  : dt == DType::kInt64 ? (void*)t.data<int64_t>()
                                        : (void*)t.data<int32_t>(),
                  data.data() + begin, end - begin);
    }
    out.tensors.emplace(name, std::move(t));
    entries.push_back({name, dt, s, begin, end});
  }
  // The data must be exactly covered, without overlaps or holes.
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
