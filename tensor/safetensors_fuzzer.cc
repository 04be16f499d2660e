// libFuzzer target for the safetensors parser: any byte string must give a
// status or a file, never a crash, hang or out-of-bounds read.
//   tools/fuzz.sh safetensors 30    (30 seconds)
#include <cstddef>
#include <cstdint>

#include "tensor/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<dive::SafetensorsFile> f = dive::ParseSafetensors(
      absl::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  if (f.ok()) {
    for (const auto& [name, t] : f->tensors) (void)t.numel();
  }
  return 0;
}
