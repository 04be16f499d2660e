// libFuzzer target for the IDX reader (raw and gzip): any file contents must
// give a status or an array of exactly the declared size, never a crash.
//   tools/fuzz.sh idx 30    (30 seconds)
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "datasets/idx.h"

namespace {

// A file of our own (mkstemp: new, unique, never a planted link), rewritten
// with each input and removed at exit.
std::string name;

int InputFile(std::string* path) {
  static const int fd = [] {
    const char* dir = std::getenv("TEST_TMPDIR");
    if (dir == nullptr) dir = std::getenv("TMPDIR");
    std::string tmpl = std::string(dir ? dir : "/tmp") + "/idx_fuzz_XXXXXX";
    const int f = mkstemp(tmpl.data());
    if (f < 0) std::abort();
    name = tmpl;
    std::atexit([] { unlink(name.c_str()); });
    return f;
  }();
  *path = name;
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path;
  const int fd = InputFile(&path);
  if (ftruncate(fd, 0) != 0 ||
      pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) {
    std::abort();
  }
  absl::StatusOr<dive::data::IdxArray> a = dive::data::ReadIdx(path);
  if (a.ok()) {
    size_t n = 1;
    for (int64_t d : a->dims) n *= static_cast<size_t>(d);
    if (n != a->data.size()) std::abort();
  }
  return 0;
}
