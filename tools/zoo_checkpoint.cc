#include "tools/zoo_checkpoint.h"

#include <sys/stat.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "models/zoo.h"
#include "quant/quantized_model.h"

namespace dive::tools {

absl::StatusOr<ZooModel> LoadZooModel(const train::Checkpoint& file,
                                      const std::string& path, std::string name,
                                      int64_t resize) {
  if (quant::IsQuantized(file.file)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path,
        " is an int8 checkpoint (written by //tools:quantize), not a "
        "float32 one (//tools:eval --precision=int8 runs it)"));
  }
  if (name.empty()) name = file.model;
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " does not record its model; pass --model"));
  }
  absl::StatusOr<models::ModelSpec> spec = models::FindModel(name);
  if (!spec.ok()) return spec.status();
  int64_t size = resize;
  if (size == 0) size = file.input_size;
  if (size == 0) size = spec->recipe.input_size;
  absl::StatusOr<std::shared_ptr<nn::Module>> model = spec->make(size);
  if (!model.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        resize != 0 ? absl::StrCat("--resize=", size)
                    : absl::StrCat("input size ", size, " (from ", path,
                                   "; override with --resize)"),
        ": ", model.status().message()));
  }
  if (absl::Status s = (*model)->LoadStateDict(file.file.tensors); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint ", path, " does not fit model ", name, ": ", s.message()));
  }
  return ZooModel{std::move(name), size, *std::move(model)};
}

absl::Status CheckOutIsNotCheckpoint(const std::string& out,
                                     const std::string& checkpoint,
                                     const char* verb) {
  struct stat o, c;
  if (stat(out.c_str(), &o) == 0 && stat(checkpoint.c_str(), &c) == 0 &&
      o.st_dev == c.st_dev && o.st_ino == c.st_ino) {
    return absl::InvalidArgumentError(
        absl::StrCat("--out=", out, ": is the checkpoint being ", verb,
                     "; choose another file"));
  }
  return absl::OkStatus();
}

}  // namespace dive::tools
