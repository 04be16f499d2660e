#include "datasets/testing/fake_data.h"

#include <algorithm>
#include <filesystem>
#include <random>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "datasets/idx.h"

namespace dive::data::testing {
namespace {

struct Raw {
  std::vector<uint8_t> images;
  std::vector<int64_t> labels;
};

Raw MakeRaw(int64_t n, uint64_t seed, int64_t height, int64_t width) {
  std::mt19937_64 gen(seed);
  Raw raw;
  raw.images.resize(n * height * width);
  raw.labels.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = static_cast<int64_t>(gen() % 10);
    raw.labels[i] = label;
    // Class c lights rows [c * height / 10, (c + 1) * height / 10).
    const int64_t top = label * height / 10;
    const int64_t bottom = std::max(top + 1, (label + 1) * height / 10);
    uint8_t* image = raw.images.data() + i * height * width;
    for (int64_t r = 0; r < height; ++r) {
      for (int64_t c = 0; c < width; ++c) {
        const bool band = r >= top && r < bottom;
        image[r * width + c] =
            static_cast<uint8_t>((band ? 160 : 0) + gen() % 64);
      }
    }
  }
  return raw;
}

}  // namespace

InMemoryDataset FakeImages(int64_t n, uint64_t seed, int64_t height,
                           int64_t width) {
  Raw raw = MakeRaw(n, seed, height, width);
  return InMemoryDataset(std::move(raw.images), std::move(raw.labels),
                         /*channels=*/1, height, width);
}

absl::Status WriteFakeFashionMnist(const std::string& dir,
                                   const FakeDataOptions& o) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": ", ec.message()));
  const std::string suffix = o.gzip ? ".gz" : "";
  struct Split {
    const char* prefix;
    int64_t n;
    int64_t n_labels;
    uint64_t seed;
  };
  for (const Split& s :
       {Split{"train", o.train, o.train_labels < 0 ? o.train : o.train_labels,
              o.seed},
        Split{"t10k", o.test, o.test, o.seed + 1}}) {
    const Raw raw =
        MakeRaw(std::max(s.n, s.n_labels), s.seed, o.height, o.width);
    const std::vector<uint8_t> images(
        raw.images.begin(), raw.images.begin() + s.n * o.height * o.width);
    std::vector<uint8_t> labels(raw.labels.begin(),
                                raw.labels.begin() + s.n_labels);
    const std::string base = absl::StrCat(dir, "/", s.prefix);
    if (absl::Status st = WriteIdx(base + "-images-idx3-ubyte" + suffix,
                                   {s.n, o.height, o.width}, images, o.gzip);
        !st.ok()) {
      return st;
    }
    if (absl::Status st = WriteIdx(base + "-labels-idx1-ubyte" + suffix,
                                   {s.n_labels}, labels, o.gzip);
        !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

}  // namespace dive::data::testing
