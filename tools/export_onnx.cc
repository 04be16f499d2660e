// Exports a checkpoint of a zoo model as an ONNX model (opset 13, dynamic
// batch) at the checkpoint's input size; see tools/onnx_export.h.
//
//   bazel run //tools:export_onnx -- --checkpoint=/tmp/lenet/model.safetensors
//   --out=/tmp/lenet.onnx
//
// --model and --resize default to what the checkpoint's metadata records.
// A quantized checkpoint (//tools:quantize) is exported as its int8 model,
// a QDQ graph (tools/onnx_export.h's ExportQuantizedOnnx) at the size it was
// quantized for, which --model and --resize may only repeat.
// The file is written atomically and never over a symlink, a device, another
// user's file or the checkpoint itself.

#include <cstdio>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "quant/quantized_model.h"
#include "tensor/file_io.h"
#include "tools/onnx_export.h"
#include "tools/zoo_checkpoint.h"
#include "train/checkpoint.h"
#include "train/cli.h"

ABSL_FLAG(std::string, model, "", "Model name (default: from the checkpoint).");
ABSL_FLAG(std::string, checkpoint, "", "A model.safetensors file.");
ABSL_FLAG(std::string, out, "", "The .onnx file to write.");
ABSL_FLAG(int64_t, resize, 0, "Input size (default: from the checkpoint).");

namespace dive::tools {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
  return 1;
}

int ExportMain() {
  const std::string path = absl::GetFlag(FLAGS_checkpoint);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (path.empty() || out.empty()) {
    return Fail(
        absl::InvalidArgumentError("--checkpoint and --out are required"));
  }
  for (const auto& [flag, value] :
       {std::pair<const char*, std::string>{"checkpoint", path},
        {"out", out}}) {
    if (absl::Status s = train::CheckPathFlag(flag, value); !s.ok())
      return Fail(s);
  }
  if (absl::Status s = CheckOutIsNotCheckpoint(out, path, "exported");
      !s.ok()) {
    return Fail(s);
  }
  absl::StatusOr<train::Checkpoint> file = train::ReadCheckpoint(path);
  if (!file.ok()) return Fail(file.status());
  if (quant::IsQuantized(file->file)) {
    absl::StatusOr<quant::LoadedQuantizedModel> q =
        quant::LoadQuantizedModel(file->file, path);
    if (!q.ok()) return Fail(q.status());
    const std::string model = absl::GetFlag(FLAGS_model);
    const int64_t resize = absl::GetFlag(FLAGS_resize);
    if ((!model.empty() && model != q->name) ||
        (resize != 0 && resize != q->input_size)) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          path, " holds ", q->name, " quantized at ", q->input_size, " x ",
          q->input_size, "; --model and --resize cannot change that")));
    }
    const int64_t size = q->input_size;
    if (absl::Status s =
            WriteQuantizedOnnx(*q->model, {1, 1, size, size}, q->name, out);
        !s.ok()) {
      return Fail(s);
    }
    std::printf("wrote %s: %s (int8 QDQ) for [N, 1, %ld, %ld] inputs\n",
                out.c_str(), q->name.c_str(), size, size);
    return 0;
  }
  absl::StatusOr<ZooModel> loaded = LoadZooModel(
      *file, path, absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_resize));
  if (!loaded.ok()) return Fail(loaded.status());
  const int64_t size = loaded->input_size;
  if (absl::Status s =
          WriteOnnx(*loaded->module, {1, 1, size, size}, loaded->name, out);
      !s.ok()) {
    return Fail(s);
  }
  std::printf("wrote %s: %s for [N, 1, %ld, %ld] inputs\n", out.c_str(),
              loaded->name.c_str(), size, size);
  return 0;
}

}  // namespace
}  // namespace dive::tools

int main(int argc, char** argv) {
  dive::ReopenClosedStandardFds();
  absl::SetProgramUsageMessage("Exports a checkpoint as an ONNX model.");
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  absl::StatusOr<bool> go_on = dive::train::ParseFlags(argc, argv);
  if (!go_on.ok()) return dive::tools::Fail(go_on.status());
  if (!*go_on) return 0;
  return dive::tools::ExportMain();
}
