#include "tensor/safetensors.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "tensor/random.h"

namespace dive {
namespace {

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/" + name;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A hand-built file: 8-byte length, JSON header, data.
std::string Build(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + header + data;
}

// The header of one F32 tensor "w" with JSON `shape` and `data_offsets`.
std::string F32W(const std::string& shape, const std::string& offsets) {
  return R"({"w":{"dtype":"F32","shape":)" + shape +
         R"(,"data_offsets":)" + offsets + "}}";
}

SafetensorsFile Sample() {
  Generator gen(1);
  SafetensorsFile f;
  f.tensors["features.0.weight"] = gen.Normal({6, 1, 5, 5}, 0, 1);
  f.tensors["features.0.bias"] = gen.Normal({6}, 0, 1);
  f.tensors["bn.num_batches_tracked"] = Tensor::FromInt64Vector({7}, {});
  f.tensors["activations"] =
      gen.Normal({2, 3}, 0, 1).To(DType::kBfloat16);  // "BF16"
  f.metadata["epoch"] = "3";
  return f;
}

TEST(Safetensors, RoundTripsTensorsAndMetadata) {
  const std::string path = TempPath("round_trip.safetensors");
  const SafetensorsFile f = Sample();
  ASSERT_TRUE(SaveSafetensors(path, f).ok());
  absl::StatusOr<SafetensorsFile> back = LoadSafetensors(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->metadata, f.metadata);  // checksum key is consumed
  EXPECT_TRUE(back->checksum_verified);
  ASSERT_EQ(back->tensors.size(), 4u);
  for (const auto& [name, t] : f.tensors) {
    const Tensor& b = back->tensors.at(name);
    EXPECT_EQ(b.shape(), t.shape()) << name;
    EXPECT_EQ(b.dtype(), t.dtype()) << name;
    EXPECT_EQ(b.ToVector(), t.ToVector()) << name;
  }
  EXPECT_FALSE(std::ifstream(path + ".tmp").good()) << "temp file left behind";
}

TEST(Safetensors, RoundTripsInt8AndUint8) {
  const std::string path = TempPath("int8.safetensors");
  SafetensorsFile f;
  f.tensors["w"] =
      Tensor::FromVector({-128, 0, 127, 5}, {2, 2}).To(DType::kInt8);
  f.tensors["zp"] = Tensor::FromVector({0, 255, 128}, {3}).To(DType::kUint8);
  ASSERT_TRUE(SaveSafetensors(path, f).ok());
  absl::StatusOr<SafetensorsFile> back = LoadSafetensors(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->tensors.at("w").dtype(), DType::kInt8);
  EXPECT_EQ(back->tensors.at("w").ToVector(), f.tensors["w"].ToVector());
  EXPECT_EQ(back->tensors.at("zp").dtype(), DType::kUint8);
  EXPECT_EQ(back->tensors.at("zp").ToVector(), f.tensors["zp"].ToVector());
}

TEST(Safetensors, SerializedBytesAreTheSavedFileAndNameTheirChecksum) {
  const std::string path = TempPath("serialized.safetensors");
  const SafetensorsFile f = Sample();
  ASSERT_TRUE(SaveSafetensors(path, f).ok());
  const SerializedSafetensors bytes = SerializeSafetensors(f);
  std::ifstream in(path, std::ios::binary);
  const std::string saved((std::istreambuf_iterator<char>(in)),
                          std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes.bytes, saved);
  absl::StatusOr<SafetensorsFile> back = ParseSafetensors(bytes.bytes, "x");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->crc32, bytes.crc32);
  SafetensorsFile other = f;
  other.tensors["features.0.bias"].data()[0] += 1;
  EXPECT_NE(SerializeSafetensors(other).crc32, bytes.crc32);
}

TEST(Safetensors, SavesNonContiguousViewsInRowMajorOrder) {
  const std::string path = TempPath("view.safetensors");
  SafetensorsFile f;
  f.tensors["t"] = Tensor::FromVector({1, 2, 3, 4, 5, 6}, {2, 3}).Transpose(0, 1);
  ASSERT_TRUE(SaveSafetensors(path, f).ok());
  EXPECT_EQ(LoadSafetensors(path)->tensors.at("t").ToVector(),
            (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST(Safetensors, ReadsFilesWithoutChecksum) {
  // As written by the Python safetensors package / our PyTorch bridge.
  std::string data(8, '\0');
  const float v[2] = {1.5f, -2.0f};
  std::memcpy(data.data(), v, 8);
  absl::StatusOr<SafetensorsFile> f = ParseSafetensors(
      Build(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data),
      "mem");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->tensors.at("w").ToVector(), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_FALSE(f->checksum_verified);  // callers can say nothing was checked
}

TEST(Safetensors, DetectsFlippedByte) {
  const std::string path = TempPath("flip.safetensors");
  ASSERT_TRUE(SaveSafetensors(path, Sample()).ok());
  std::string bytes = ReadBytes(path);
  bytes[bytes.size() - 5] ^= 0x10;
  WriteBytes(path, bytes);
  absl::StatusOr<SafetensorsFile> f = LoadSafetensors(path);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("checksum mismatch"), std::string::npos)
      << f.status();
  EXPECT_NE(f.status().message().find(path), std::string::npos);
}

// The header text of serialized bytes, and the bytes with `header` instead.
std::string HeaderOf(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) {
    n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  }
  return bytes.substr(8, n);
}
std::string WithHeader(const std::string& bytes, const std::string& header) {
  return Build(header, bytes.substr(8 + HeaderOf(bytes).size()));
}

// `text` with the first `from` replaced by `to` (which must be there).
std::string Replace(std::string text, const std::string& from,
                    const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from << " not in " << text;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

TEST(Safetensors, HeaderChecksumCoversMetadataNamesShapesAndOffsets) {
  SafetensorsFile f = Sample();
  f.tensors["features.3.bias"] = Tensor::Full({6}, 2.0f);  // as large as 0's
  const std::string bytes = SerializeSafetensors(f).bytes;
  absl::StatusOr<SafetensorsFile> good = ParseSafetensors(bytes, "good.st");
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_TRUE(good->header_verified);
  EXPECT_TRUE(good->checksum_verified);
  EXPECT_EQ(good->metadata, f.metadata);  // both checksum keys are consumed

  const std::string header = HeaderOf(bytes);
  // The data offsets of the two biases, swapped: every byte of the data
  // (and so its CRC) is unchanged, only which tensor reads which bytes.
  const auto offsets = [&](const std::string& name) {
    const size_t at = header.find("\"" + name + "\"");
    const size_t begin = header.find("\"data_offsets\":[", at);
    return header.substr(begin, header.find(']', begin) - begin + 1);
  };
  const std::string a = offsets("features.0.bias"),
                    b = offsets("features.3.bias");
  std::string swapped = Replace(header, a, "@A@");
  swapped = Replace(Replace(swapped, b, a), "@A@", b);
  const struct {
    const char* name;
    std::string header;
  } edits[] = {
      {"metadata value", Replace(header, "\"epoch\":\"3\"", "\"epoch\":\"5\"")},
      {"swapped offsets", swapped},
      {"dtype and shape", Replace(header, "\"dtype\":\"I64\",\"shape\":[]",
                                  "\"dtype\":\"I32\",\"shape\":[2]")},
      {"tensor name", Replace(header, "features.3.bias", "features.4.bias")},
      {"a metadata key added",
       Replace(header, "\"__metadata__\":{", "\"__metadata__\":{\"x\":\"y\",")},
  };
  for (const auto& e : edits) {
    absl::StatusOr<SafetensorsFile> edited =
        ParseSafetensors(WithHeader(bytes, e.header), "edited.st");
    ASSERT_FALSE(edited.ok()) << e.name;
    EXPECT_EQ(edited.status().code(), absl::StatusCode::kDataLoss) << e.name;
    EXPECT_NE(
        edited.status().message().find("edited.st: header checksum mismatch"),
        std::string::npos)
        << e.name << ": " << edited.status();
  }
  // Without the data's checksum, the header's would not cover the data.
  const std::string no_data_crc = WithHeader(
      bytes, Replace(header,
                     "\"dive.crc32\":\"" +
                         std::to_string(SerializeSafetensors(f).crc32) + "\",",
                     ""));
  absl::StatusOr<SafetensorsFile> edited =
      ParseSafetensors(no_data_crc, "edited.st");
  ASSERT_FALSE(edited.ok());
  EXPECT_NE(edited.status().message().find("the data has none"),
            std::string::npos)
      << edited.status();
}

// The header is the text dive has always written (before it used
// nlohmann/json too): `__metadata__` first, then the tensors in name order,
// compact. The header checksum of every file dive wrote covers this text,
// so it must not change.
TEST(Safetensors, HeaderTextIsUnchangedSoOlderChecksumsVerify) {
  constexpr char kGolden[] =
      R"({"__metadata__":{"dive.crc32":"3162136845",)"
      R"("dive.header_crc32":"1551674170","epoch":"3"},)"
      R"("0.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("B.bias":{"dtype":"I64","shape":[],"data_offsets":[8,16]}})";
  SafetensorsFile f;
  f.tensors["0.weight"] = Tensor::FromVector({1.5f, -2.0f}, {2});
  f.tensors["B.bias"] = Tensor::FromInt64Vector({7}, {});
  f.metadata["epoch"] = "3";
  const std::string bytes = SerializeSafetensors(f).bytes;
  EXPECT_EQ(HeaderOf(bytes), std::string(kGolden) + " ");  // padded to 8
  absl::StatusOr<SafetensorsFile> back =
      ParseSafetensors(Build(kGolden, bytes.substr(8 + 208)), "golden.st");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->header_verified);
  EXPECT_TRUE(back->checksum_verified);
}

TEST(Safetensors, FilesWithOnlyTheDataChecksumStillLoad) {
  // As dive wrote them before the header checksum.
  const std::string bytes = SerializeSafetensors(Sample()).bytes;
  std::string header = HeaderOf(bytes);
  const size_t key = header.find(",\"dive.header_crc32\":\"");
  ASSERT_NE(key, std::string::npos) << header;
  header.erase(key, header.find('"', key + 22) + 1 - key);
  absl::StatusOr<SafetensorsFile> f =
      ParseSafetensors(WithHeader(bytes, header), "old.st");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->checksum_verified);
  EXPECT_FALSE(f->header_verified);
  EXPECT_EQ(f->metadata.at("epoch"), "3");
}

TEST(Safetensors, MissingFileIsNotFound) {
  absl::StatusOr<SafetensorsFile> f = LoadSafetensors("/nonexistent/x.safetensors");
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(f.status().message().find("/nonexistent/x.safetensors"),
            std::string::npos);
}

TEST(Safetensors, UnwritableDirectoryIsAnError) {
  absl::Status s = SaveSafetensors("/nonexistent/dir/x.safetensors", Sample());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent/dir/x.safetensors.tmp"),
            std::string::npos);
}

struct BadCase {
  const char* name;
  std::string bytes;
  const char* expected;
};

TEST(Safetensors, RejectsMalformedFilesWithClearMessages) {
  const std::string eight(8, '\0');
  const BadCase cases[] = {
      {"short", "abc", "too short"},
      {"huge header length", std::string("\xff\xff\xff\xff\0\0\0\0", 8) + "{}",
       "header length"},
      {"not json", Build("{nope}", ""), "invalid JSON"},
      {"not an object", Build("[1]", ""), "not a JSON object"},
      {"unknown dtype",
       Build(R"({"w":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})", "ab"),
       "unsupported dtype 'F16'"},
      {"no shape", Build(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", "abcd"),
       "no valid shape"},
      {"offsets outside data",
       Build(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "abcd"),
       "outside the 4-byte data section"},
      {"size mismatch",
       Build(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight),
       "needs 12"},
      {"reversed offsets",
       Build(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", eight),
       "outside"},
      {"overlap",
       Build(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
       "overlaps or leaves a gap"},
      {"trailing bytes",
       Build(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight),
       "4 trailing bytes"},
      {"overflowing dims",
       Build(F32W("[4294967296,4294967296]", "[0,4]"), "abcd"),
       "too many elements"},
      {"integer overflow",
       Build(F32W("[99999999999999999999999]", "[0,4]"), "abcd"),
       "integer overflow"},
      {"tensor named twice",
       Build(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
             R"("w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
             "abcd"),
       "duplicate key \"w\""},
      {"nested too deeply", Build(std::string(100000, '['), ""),
       "nested deeper than 16 levels"},
      {"fractional dimension", Build(F32W("[1.5]", "[0,4]"), "abcd"),
       "invalid dimension 1.5"},
      {"negative offset", Build(F32W("[1]", "[-4,0]"), "abcd"),
       "no valid data_offsets"},
      {"bad metadata",
       Build(R"({"__metadata__":{"a":1}})", ""), "is not a string"},
      {"bad checksum text",
       Build(R"({"__metadata__":{"dive.crc32":"x"}})", ""), "not a number"},
  };
  for (const BadCase& c : cases) {
    absl::StatusOr<SafetensorsFile> f = ParseSafetensors(c.bytes, "bad.st");
    ASSERT_FALSE(f.ok()) << c.name;
    EXPECT_NE(f.status().message().find(c.expected), std::string::npos)
        << c.name << ": " << f.status();
    EXPECT_NE(f.status().message().find("bad.st"), std::string::npos) << c.name;
  }
}

TEST(Safetensors, InterruptedSaveLeavesPreviousFileIntact) {
  const std::string path = TempPath("atomic.safetensors");
  ASSERT_TRUE(SaveSafetensors(path, Sample()).ok());
  // A crash mid-save leaves only a partial temp file next to the good one.
  WriteBytes(path + ".tmp", "partial garbage");
  absl::StatusOr<SafetensorsFile> f = LoadSafetensors(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->metadata.at("epoch"), "3");
  // The next save replaces the stale temp file.
  ASSERT_TRUE(SaveSafetensors(path, Sample()).ok());
  EXPECT_TRUE(LoadSafetensors(path).ok());
}

}  // namespace
}  // namespace dive
