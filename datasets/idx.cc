#include "datasets/idx.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <new>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tensor/file_io.h"

namespace dive::data {
namespace {

constexpr uint8_t kTypeUint8 = 0x08;
// gzread and gzwrite take an `unsigned` length.
constexpr size_t kMaxChunk = size_t{1} << 30;
// Without a file size to check against (gzip), the payload buffer starts at
// most this large and grows as data arrives, so a corrupt header that claims
// terabytes fails with DataLoss instead of an allocation failure.
constexpr size_t kInitialGzipBuffer = size_t{64} << 20;
// deflate compresses at most about 1032:1, so a gzip file of n bytes holds
// at most this many times n bytes of data (plus a little for tiny files).
constexpr uint64_t kMaxGzipRatio = 1100;

// The name of an IDX type code, or nullptr when the code is not valid IDX.
const char* TypeCodeName(uint8_t code) {
  switch (code) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return nullptr;
  }
}

absl::Status OpenError(const std::string& path, int err) {
  const std::string message =
      absl::StrCat("cannot open file ", path, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
      return absl::PermissionDeniedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

// A sequential byte source over a raw file or a gzip stream.
class ByteReader {
 public:
  virtual ~ByteReader() = default;
  // Reads up to `n` bytes; fewer only at the end of the data or on error.
  virtual size_t Read(uint8_t* buf, size_t n) = 0;
  // OK, or DataLoss naming the file when reading or decompressing failed.
  virtual absl::Status status() const = 0;
};

class RawReader : public ByteReader {
 public:
  RawReader(std::FILE* f, std::string path) : f_(f), path_(std::move(path)) {}
  ~RawReader() override { std::fclose(f_); }

  size_t Read(uint8_t* buf, size_t n) override {
    return std::fread(buf, 1, n, f_);
  }
  absl::Status status() const override {
    if (std::ferror(f_)) {
      return absl::DataLossError(absl::StrCat("file ", path_, ": read error"));
    }
    return absl::OkStatus();
  }

 private:
  std::FILE* f_;
  std::string path_;
};

class GzipReader : public ByteReader {
 public:
  GzipReader(gzFile f, std::string path) : f_(f), path_(std::move(path)) {}
  ~GzipReader() override { gzclose_r(f_); }

  size_t Read(uint8_t* buf, size_t n) override {
    size_t total = 0;
    while (total < n) {
      const unsigned want =
          static_cast<unsigned>(std::min(n - total, kMaxChunk));
      const int got = gzread(f_, buf + total, want);
      if (got <= 0) break;
      total += static_cast<size_t>(got);
    }
    return total;
  }
  // zlib reports a truncated stream as Z_BUF_ERROR ("unexpected end of
  // file") and bad data as Z_DATA_ERROR; neither makes gzread return -1 in
  // every case, so the error state is checked explicitly.
  absl::Status status() const override {
    int errnum = Z_OK;
    const char* message = gzerror(f_, &errnum);
    if (errnum == Z_OK) return absl::OkStatus();
    if (errnum == Z_ERRNO) {
      return absl::DataLossError(
          absl::StrCat("file ", path_, ": read error: ", std::strerror(errno)));
    }
    return absl::DataLossError(absl::StrCat(
        "file ", path_, ": corrupt gzip stream: ", message ? message : "?"));
  }

 private:
  gzFile f_;
  std::string path_;
};

// Opens `path`, a regular file, choosing raw or gzip by the first two
// bytes. `*file_size` is set to the size of the file and `*gzip` to whether
// it is compressed.
absl::StatusOr<std::unique_ptr<ByteReader>> OpenReader(const std::string& path,
                                                       int64_t* file_size,
                                                       bool* gzip) {
  // O_NONBLOCK: a FIFO must not block the open; the check below refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return OpenError(path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return OpenError(path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("file ", path, " is ", FileTypeName(st.st_mode),
                     ", not a regular file"));
  }
  *file_size = st.st_size;
  uint8_t magic[2] = {0, 0};
  *gzip = ::pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  if (*gzip) {
    gzFile gz = gzdopen(fd, "rb");  // owns fd from here
    if (gz == nullptr) {
      ::close(fd);
      return OpenError(path, ENOMEM);
    }
    gzbuffer(gz, 1 << 17);
    return std::unique_ptr<ByteReader>(new GzipReader(gz, path));
  }
  std::FILE* f = ::fdopen(fd, "rb");
  if (f == nullptr) {
    const int err = errno;
    ::close(fd);
    return OpenError(path, err);
  }
  return std::unique_ptr<ByteReader>(new RawReader(f, path));
}

// Counts the bytes left in `reader` (bounded by memory, not by size).
size_t CountRemaining(ByteReader& reader) {
  uint8_t buf[1 << 16];
  size_t total = 0;
  size_t got;
  while ((got = reader.Read(buf, sizeof(buf))) > 0) total += got;
  return total;
}

}  // namespace

absl::StatusOr<IdxArray> ReadIdx(const std::string& path) {
  int64_t file_size = 0;
  bool gzip = false;
  absl::StatusOr<std::unique_ptr<ByteReader>> opened =
      OpenReader(path, &file_size, &gzip);
  if (!opened.ok()) return opened.status();
  ByteReader& reader = **opened;

  // ---- Header
  // ----------------------------------------------------------------
  uint8_t magic[4];
  if (reader.Read(magic, 4) != 4) {
    if (absl::Status s = reader.status(); !s.ok()) return s;
    return absl::DataLossError(absl::StrCat(
        "file ", path, ": truncated header (shorter than the 4-byte magic)"));
  }
  if (magic[0] != 0 || magic[1] != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "file %s: bad magic number 0x%02x%02x%02x%02x (an IDX file starts "
        "with two zero bytes); not an IDX file",
        path, magic[0], magic[1], magic[2], magic[3]));
  }
  const uint8_t type_code = magic[2];
  if (type_code != kTypeUint8) {
    const char* name = TypeCodeName(type_code);
    if (name == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "file %s: invalid IDX type code 0x%02x", path, type_code));
    }
    return absl::UnimplementedError(absl::StrFormat(
        "file %s: IDX type code 0x%02x (%s) is not supported; only 0x08 "
        "(unsigned byte) is",
        path, type_code, name));
  }
  const int rank = magic[3];
  if (rank < 1 || rank > kMaxIdxRank) {
    return absl::InvalidArgumentError(
        absl::StrCat("file ", path, ": IDX rank ", rank,
                     " is not supported; expected 1 to ", kMaxIdxRank));
  }
  uint8_t dim_bytes[4 * kMaxIdxRank];
  if (reader.Read(dim_bytes, 4 * rank) != static_cast<size_t>(4 * rank)) {
    if (absl::Status s = reader.status(); !s.ok()) return s;
    return absl::DataLossError(absl::StrCat(
        "file ", path, ": truncated header (", rank, " dimensions expected)"));
  }

  IdxArray out;
  out.dims.resize(rank);
  uint64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    const uint8_t* b = dim_bytes + 4 * i;
    const uint64_t d = (uint64_t{b[0]} << 24) | (uint64_t{b[1]} << 16) |
                       (uint64_t{b[2]} << 8) | uint64_t{b[3]};
    if (d == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("file ", path, ": dimension ", i, " is zero"));
    }
    if (__builtin_mul_overflow(count, d, &count) ||
        count > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "file ", path, ": the product of the dimensions overflows"));
    }
    out.dims[i] = static_cast<int64_t>(d);
  }
  const size_t header_size = 4 + 4 * static_cast<size_t>(rank);

  // ---- Payload
  // ---------------------------------------------------------------
  const auto truncated = [&](uint64_t found) {
    return absl::DataLossError(absl::StrCat("file ", path, ": expected ", count,
                                            " bytes of data, found ", found));
  };
  const auto too_large = [&](absl::string_view why) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "file ", path, ": the header declares ", count,
        " bytes of data, ", why));
  };
  // Allocation failure is an error, not an abort.
  const auto allocate = [&](size_t n) {
    try {
      out.data.resize(n);
    } catch (const std::bad_alloc&) {
      return too_large("more than the memory available");
    }
    return absl::OkStatus();
  };
  if (!gzip) {
    // Raw: the file size tells the payload size before anything is allocated.
    const uint64_t found = static_cast<uint64_t>(file_size) - header_size;
    if (found < count) return truncated(found);
    if (found > count) {
      return absl::DataLossError(absl::StrCat(
          "file ", path, ": expected ", count, " bytes of data, found ",
          found - count, " trailing bytes after them"));
    }
    if (count > kMaxIdxBytes) {
      return too_large(absl::StrCat("more than the limit of ", kMaxIdxBytes));
    }
    if (absl::Status s = allocate(count); !s.ok()) return s;
    const size_t got = reader.Read(out.data.data(), count);
    if (absl::Status s = reader.status(); !s.ok()) return s;
    if (got != count) return truncated(got);
    return out;
  }

  // Gzip: the decompressed size is only known by decompressing, but the
  // compressed size bounds it: a small file declaring terabytes (a gzip
  // bomb, or a corrupt header) is refused before anything is allocated, and
  // the buffer grows only as data arrives.
  const uint64_t most = static_cast<uint64_t>(file_size) * kMaxGzipRatio +
                        (uint64_t{1} << 20);
  if (count > most) {
    return too_large(absl::StrCat("more than its ", file_size,
                                  " compressed bytes can hold (gzip "
                                  "compresses at most about 1000:1)"));
  }
  if (count > kMaxIdxBytes) {
    return too_large(absl::StrCat("more than the limit of ", kMaxIdxBytes));
  }
  if (absl::Status s =
          allocate(std::min<uint64_t>(count, kInitialGzipBuffer));
      !s.ok()) {
    return s;
  }
  size_t filled = 0;
  while (filled < count) {
    if (filled == out.data.size()) {
      if (absl::Status s =
              allocate(std::min<uint64_t>(count, 2 * out.data.size()));
          !s.ok()) {
        return s;
      }
    }
    const size_t got =
        reader.Read(out.data.data() + filled, out.data.size() - filled);
    filled += got;
    if (filled < out.data.size()) break;  // end of data or error
  }
  if (absl::Status s = reader.status(); !s.ok()) return s;
  if (filled < count) return truncated(filled);
  // Reading on to the end also makes zlib check the gzip trailer (CRC-32).
  const size_t trailing = CountRemaining(reader);
  if (absl::Status s = reader.status(); !s.ok()) return s;
  if (trailing > 0) {
    return absl::DataLossError(absl::StrCat("file ", path, ": expected ", count,
                                            " bytes of data, found ", trailing,
                                            " trailing bytes after them"));
  }
  return out;
}

absl::Status WriteIdx(const std::string& path, absl::Span<const int64_t> dims,
                      absl::Span<const uint8_t> data, bool gzip) {
  if (dims.empty() || dims.size() > kMaxIdxRank) {
    return absl::InvalidArgumentError(absl::StrCat("WriteIdx ", path, ": rank ",
                                                   dims.size(), " is not 1 to ",
                                                   kMaxIdxRank));
  }
  std::string header = {0, 0, static_cast<char>(kTypeUint8),
                        static_cast<char>(dims.size())};
  uint64_t count = 1;
  for (int64_t d : dims) {
    if (d < 1 || d > int64_t{0xffffffff}) {
      return absl::InvalidArgumentError(absl::StrCat(
          "WriteIdx ", path, ": dimension ", d, " is not in [1, 2^32)"));
    }
    if (__builtin_mul_overflow(count, static_cast<uint64_t>(d), &count) ||
        count > data.size()) {
      count = std::numeric_limits<uint64_t>::max();  // reported below
      break;
    }
    for (int shift = 24; shift >= 0; shift -= 8) {
      header.push_back(static_cast<char>((d >> shift) & 0xff));
    }
  }
  if (count != data.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "WriteIdx ", path, ": dimensions [", absl::StrJoin(dims, ", "),
        "] do not match the ", data.size(), " elements of data"));
  }

  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wbe");  // e: O_CLOEXEC
    if (f == nullptr) return OpenError(path, errno);
    bool ok = gzwrite(f, header.data(), header.size()) ==
              static_cast<int>(header.size());
    for (size_t i = 0; ok && i < data.size(); i += kMaxChunk) {
      const unsigned n =
          static_cast<unsigned>(std::min(data.size() - i, kMaxChunk));
      ok = gzwrite(f, data.data() + i, n) == static_cast<int>(n);
    }
    if (gzclose_w(f) != Z_OK) ok = false;
    if (!ok) {
      return absl::DataLossError(absl::StrCat("cannot write file ", path));
    }
    return absl::OkStatus();
  }
  std::FILE* f = std::fopen(path.c_str(), "wbe");  // e: O_CLOEXEC
  if (f == nullptr) return OpenError(path, errno);
  bool ok = std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            std::fwrite(data.data(), 1, data.size(), f) == data.size();
  if (std::fclose(f) != 0) ok = false;
  if (!ok) {
    return absl::DataLossError(absl::StrCat("cannot write file ", path));
  }
  return absl::OkStatus();
}

}  // namespace dive::data
