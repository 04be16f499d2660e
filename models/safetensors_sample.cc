// Writes a small safetensors file with dive's C++ writer, for
// models/safetensors_io_test.py (the Python reader must read what C++ writes):
//   safetensors_sample OUT_PATH
// Tensors: "w", float32 [2, 3] = 0, 0.5, ..., 2.5; "steps", int64 [2] =
// 7, -3; "q", int8 [3] = -128, 0, 127; "u", uint8 [2] = 0, 255 (the dtypes
// of a quantized checkpoint); "h", bf16 [3] = 1, -2.5, 0.15625; metadata
// {"epoch": "3"}.
#include <cstdio>
#include <string>

#include "tensor/safetensors.h"
#include "tensor/tensor.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_PATH\n", argv[0]);
    return 2;
  }
  dive::SafetensorsFile file;
  file.tensors["w"] =
      dive::Tensor::FromVector({0, 0.5f, 1, 1.5f, 2, 2.5f}, {2, 3});
  file.tensors["steps"] = dive::Tensor::FromInt64Vector({7, -3}, {2});
  file.tensors["q"] =
      dive::Tensor::FromVector({-128, 0, 127}, {3}).To(dive::DType::kInt8);
  file.tensors["u"] =
      dive::Tensor::FromVector({0, 255}, {2}).To(dive::DType::kUint8);
  file.tensors["h"] = dive::Tensor::FromVector({1, -2.5f, 0.15625f}, {3})
                          .To(dive::DType::kBfloat16);
  file.metadata["epoch"] = "3";
  if (absl::Status s = dive::SaveSafetensors(argv[1], file); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
