// libFuzzer target for the IDX reader (raw and gzip): any file contents must
// give a status or an array of exactly the declared size, never a crash.
//   tools/fuzz.sh idx 30    (30 seconds)
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "datasets/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path =
      std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
      "/idx_fuzz_" + std::to_string(getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  absl::StatusOr<dive::data::IdxArray> a = dive::data::ReadIdx(path);
  if (a.ok()) {
    size_t n = 1;
    for (int64_t d : a->dims) n *= static_cast<size_t>(d);
    if (n != a->data.size()) std::abort();
  }
  return 0;
}
