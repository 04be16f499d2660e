#include "datasets/idx.h"

#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dive::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/idx_test_", name);
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// Gzip-compresses `bytes` into `path` (a single gzip member).
void WriteGzipBytes(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

// An IDX header for uint8 with the given dimensions.
std::string Header(const std::vector<uint32_t>& dims, char type = 0x08) {
  std::string h = {0, 0, type, static_cast<char>(dims.size())};
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      h.push_back(static_cast<char>((d >> shift) & 0xff));
    }
  }
  return h;
}

std::vector<uint8_t> Iota(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 7 + 3);
  return v;
}

TEST(IdxTest, RoundTripRaw) {
  const std::string path = TempPath("raw.idx");
  const std::vector<uint8_t> data = Iota(2 * 3 * 4);
  ASSERT_TRUE(WriteIdx(path, {2, 3, 4}, data, /*gzip=*/false).ok());
  // The raw file is exactly header + payload.
  EXPECT_EQ(ReadBytes(path).size(), 4 + 3 * 4 + data.size());
  absl::StatusOr<IdxArray> a = ReadIdx(path);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->dims, ElementsAre(2, 3, 4));
  EXPECT_EQ(a->data, data);
}

TEST(IdxTest, RoundTripGzip) {
  const std::string path = TempPath("gz.idx.gz");
  const std::vector<uint8_t> data = Iota(5 * 6);
  ASSERT_TRUE(WriteIdx(path, {5, 6}, data, /*gzip=*/true).ok());
  const std::string bytes = ReadBytes(path);
  ASSERT_GE(bytes.size(), 2u);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), 0x1f);
  EXPECT_EQ(static_cast<uint8_t>(bytes[1]), 0x8b);
  absl::StatusOr<IdxArray> a = ReadIdx(path);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->dims, ElementsAre(5, 6));
  EXPECT_EQ(a->data, data);
}

TEST(IdxTest, CompressionIsDetectedByMagicNotName) {
  const std::string gz_no_suffix = TempPath("really_gzip");
  const std::string raw_gz_suffix = TempPath("really_raw.gz");
  ASSERT_TRUE(WriteIdx(gz_no_suffix, {3}, {1, 2, 3}, true).ok());
  ASSERT_TRUE(WriteIdx(raw_gz_suffix, {3}, {4, 5, 6}, false).ok());
  absl::StatusOr<IdxArray> a = ReadIdx(gz_no_suffix);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->data, ElementsAre(1, 2, 3));
  absl::StatusOr<IdxArray> b = ReadIdx(raw_gz_suffix);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_THAT(b->data, ElementsAre(4, 5, 6));
}

TEST(IdxTest, Rank1And4) {
  const std::string path = TempPath("rank4.gz");
  const std::vector<uint8_t> data = Iota(2 * 1 * 3 * 2);
  ASSERT_TRUE(WriteIdx(path, {2, 1, 3, 2}, data, true).ok());
  absl::StatusOr<IdxArray> a = ReadIdx(path);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->dims, ElementsAre(2, 1, 3, 2));
  EXPECT_EQ(a->data, data);

  const std::string path1 = TempPath("rank1");
  ASSERT_TRUE(WriteIdx(path1, {1}, {255}, false).ok());
  absl::StatusOr<IdxArray> b = ReadIdx(path1);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_THAT(b->dims, ElementsAre(1));
  EXPECT_THAT(b->data, ElementsAre(255));
}

TEST(IdxTest, PayloadLargerThanOneReadChunk) {
  // 300 KB: several gzip buffer refills and reads.
  const std::string path = TempPath("big.gz");
  const std::vector<uint8_t> data = Iota(300 * 1024);
  ASSERT_TRUE(WriteIdx(path, {300, 1024}, data, true).ok());
  absl::StatusOr<IdxArray> a = ReadIdx(path);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->data, data);
}

// ---- Errors
// ---------------------------------------------------------------------

TEST(IdxErrorTest, MissingFile) {
  const std::string path = TempPath("does_not_exist");
  absl::StatusOr<IdxArray> a = ReadIdx(path);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(a.status().message(), HasSubstr(path));
}

TEST(IdxErrorTest, BadMagic) {
  for (bool gz : {false, true}) {
    const std::string path = TempPath(gz ? "bad_magic.gz" : "bad_magic");
    std::string bytes = Header({2});
    bytes[0] = 'P';
    bytes[1] = 'K';
    bytes += "ab";
    gz ? WriteGzipBytes(path, bytes) : WriteBytes(path, bytes);
    absl::StatusOr<IdxArray> a = ReadIdx(path);
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << gz;
    EXPECT_THAT(a.status().message(), HasSubstr(path));
    EXPECT_THAT(a.status().message(), HasSubstr("magic"));
  }
}

TEST(IdxErrorTest, UnsupportedTypeCode) {
  const std::string path = TempPath("int32.idx");
  WriteBytes(path, Header({1}, 0x0C) + std::string(4, '\0'));
  absl::StatusOr<IdxArray> a = ReadIdx(path);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(a.status().message(), HasSubstr(path));
  EXPECT_THAT(a.status().message(), HasSubstr("0x0c"));
}

TEST(IdxErrorTest, InvalidTypeCode) {
  const std::string path = TempPath("type42.idx");
  WriteBytes(path, Header({1}, 0x42) + "x");
  absl::StatusOr<IdxArray> a = ReadIdx(path);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(a.status().message(), HasSubstr("type code 0x42"));
}

TEST(IdxErrorTest, BadRank) {
  const std::string path0 = TempPath("rank0");
  WriteBytes(path0, Header({}) + "x");
  EXPECT_THAT(ReadIdx(path0).status().message(), HasSubstr("rank 0"));
  const std::string path5 = TempPath("rank5");
  WriteBytes(path5, Header({1, 1, 1, 1, 1}) + "x");
  absl::StatusOr<IdxArray> a = ReadIdx(path5);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(a.status().message(), HasSubstr("rank 5"));
}

TEST(IdxErrorTest, ZeroDimension) {
  const std::string path = TempPath("zero_dim");
  WriteBytes(path, Header({3, 0, 2}));
  absl::StatusOr<IdxArray> a = ReadIdx(path);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(a.status().message(), HasSubstr(path));
  EXPECT_THAT(a.status().message(), HasSubstr("dimension 1 is zero"));
}

TEST(IdxErrorTest, DimensionProductOverflows) {
  const std::string path = TempPath("overflow.gz");
  WriteGzipBytes(path, Header({0xffffffff, 0xffffffff, 0xffffffff}) + "x");
  absl::StatusOr<IdxArray> a = ReadIdx(path);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(a.status().message(), HasSubstr("overflows"));
}

TEST(IdxErrorTest, HugeClaimedSizeFailsWithoutAllocatingIt) {
  // 2^40 bytes claimed, 3 present: must fail cleanly (raw and gzip).
  const std::string bytes = Header({1 << 20, 1 << 20}) + "abc";
  const std::string raw = TempPath("huge"), gz = TempPath("huge.gz");
  WriteBytes(raw, bytes);
  absl::StatusOr<IdxArray> a = ReadIdx(raw);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(a.status().message(),
              HasSubstr("expected 1099511627776 bytes of data, found 3"));
  WriteGzipBytes(gz, bytes);
  a = ReadIdx(gz);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(a.status().message(),
              HasSubstr(absl::StrCat(gz, ": the header declares 1099511627776 "
                                         "bytes of data, more than its ")));
  EXPECT_THAT(a.status().message(),
              HasSubstr("compressed bytes can hold (gzip compresses at most "
                        "about 1000:1)"));
}

TEST(IdxErrorTest, GzipBombIsRefusedBeforeDecompressing) {
  // A real bomb: 64 MiB of zeros compress to ~64 KiB, and the header
  // declares 2^32 * 400 bytes (1.7 TB), as in the issue.
  const std::string path = TempPath("bomb.gz");
  gzFile f = gzopen(path.c_str(), "wb9");
  ASSERT_NE(f, nullptr);
  const std::string header = Header({0xffffffff, 400});
  ASSERT_EQ(gzwrite(f, header.data(), header.size()),
            static_cast<int>(header.size()));
  const std::string zeros(1 << 20, '\0');
  for (int i = 0; i < 64; ++i) {
    ASSERT_EQ(gzwrite(f, zeros.data(), zeros.size()),
              static_cast<int>(zeros.size()));
  }
  ASSERT_EQ(gzclose(f), Z_OK);
  absl::StatusOr<IdxArray> a = ReadIdx(path);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(a.status().message(),
              HasSubstr("declares 1717986918000 bytes of data, more than its"));

  // A raw file that holds all it declares, but over the limit: 5 GiB
  // (sparse, so the test writes nothing) is refused before allocating.
  const std::string big = TempPath("big");
  WriteBytes(big, Header({5, 1 << 30}));
  ASSERT_EQ(truncate(big.c_str(), 12 + (int64_t{5} << 30)), 0);  // sparse
  a = ReadIdx(big);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(a.status().message(),
              HasSubstr("declares 5368709120 bytes of data, more than the "
                        "limit of 4294967296"));
}

TEST(IdxErrorTest, NotARegularFile) {
  for (const char* path : {"/dev/zero", "/"}) {
    absl::StatusOr<IdxArray> a = ReadIdx(path);
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << path;
    EXPECT_THAT(a.status().message(),
                HasSubstr(absl::StrCat("file ", path, " is a ")));
    EXPECT_THAT(a.status().message(), HasSubstr(", not a regular file"));
  }
  const std::string fifo = TempPath("fifo");
  unlink(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  EXPECT_THAT(ReadIdx(fifo).status().message(), HasSubstr("is a FIFO"));
}

TEST(IdxErrorTest, TruncatedHeader) {
  const std::string path = TempPath("short_header");
  WriteBytes(path, Header({7, 7}).substr(0, 9));
  absl::StatusOr<IdxArray> a = ReadIdx(path);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(a.status().message(), HasSubstr("truncated header"));

  const std::string empty = TempPath("empty");
  WriteBytes(empty, "");
  EXPECT_EQ(ReadIdx(empty).status().code(), absl::StatusCode::kDataLoss);
}

TEST(IdxErrorTest, TruncatedPayload) {
  for (bool gz : {false, true}) {
    const std::string path = TempPath(gz ? "truncated.gz" : "truncated");
    const std::string bytes = Header({4, 5}) + std::string(17, 'x');
    gz ? WriteGzipBytes(path, bytes) : WriteBytes(path, bytes);
    absl::StatusOr<IdxArray> a = ReadIdx(path);
    EXPECT_EQ(a.status().code(), absl::StatusCode::kDataLoss) << gz;
    EXPECT_EQ(a.status().message(),
              absl::StrCat("file ", path, ": expected 20 bytes of data, ",
                           "found 17"));
  }
}

TEST(IdxErrorTest, TrailingBytes) {
  for (bool gz : {false, true}) {
    const std::string path = TempPath(gz ? "trailing.gz" : "trailing");
    const std::string bytes = Header({2, 2}) + std::string(4 + 3, 'x');
    gz ? WriteGzipBytes(path, bytes) : WriteBytes(path, bytes);
    absl::StatusOr<IdxArray> a = ReadIdx(path);
    EXPECT_EQ(a.status().code(), absl::StatusCode::kDataLoss) << gz;
    EXPECT_THAT(a.status().message(), HasSubstr(path));
    EXPECT_THAT(a.status().message(),
                HasSubstr("expected 4 bytes of data, found 3 trailing bytes"));
  }
}

// Writes a valid gzip IDX file and returns its bytes.
std::string ValidGzipBytes(const std::string& path) {
  std::vector<uint8_t> data(1000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = (i * i) % 251;
  EXPECT_TRUE(WriteIdx(path, {10, 100}, data, true).ok());
  return ReadBytes(path);
}

TEST(IdxErrorTest, CorruptGzipChecksum) {
  const std::string path = TempPath("bad_crc.gz");
  std::string bytes = ValidGzipBytes(path);
  bytes[bytes.size() - 8] ^= 0x55;  // CRC-32 in the gzip trailer
  WriteBytes(path, bytes);
  absl::StatusOr<IdxArray> a = ReadIdx(path);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(a.status().message(), HasSubstr(path));
  EXPECT_THAT(a.status().message(), HasSubstr("corrupt gzip stream"));
}

TEST(IdxErrorTest, CorruptGzipDeflateData) {
  const std::string path = TempPath("bad_deflate.gz");
  std::string bytes = ValidGzipBytes(path);
  // After the 10-byte gzip header: 0xff starts a block of reserved type 3.
  for (size_t i = 10; i < bytes.size() - 8; ++i) bytes[i] = '\xff';
  WriteBytes(path, bytes);
  absl::StatusOr<IdxArray> a = ReadIdx(path);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(a.status().message(), HasSubstr(path));
  EXPECT_THAT(a.status().message(), HasSubstr("corrupt gzip stream"));
}

TEST(IdxErrorTest, TruncatedGzipFile) {
  const std::string path = TempPath("cut.gz");
  std::string bytes = ValidGzipBytes(path);
  WriteBytes(path, bytes.substr(0, bytes.size() / 2));
  absl::StatusOr<IdxArray> a = ReadIdx(path);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(a.status().message(), HasSubstr(path));
  EXPECT_THAT(a.status().message(), HasSubstr("corrupt gzip stream"));
}

TEST(IdxWriteTest, RejectsBadArguments) {
  const std::string path = TempPath("unused");
  EXPECT_EQ(WriteIdx(path, {}, {}, false).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteIdx(path, {1, 1, 1, 1, 1}, {0}, false).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteIdx(path, {0}, {}, false).code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status s = WriteIdx(path, {2, 3}, {1, 2, 3}, false);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("[2, 3]"));
  EXPECT_EQ(WriteIdx(TempPath("no_such_dir/x"), {1}, {1}, true).code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dive::data
