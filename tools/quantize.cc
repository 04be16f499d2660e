// Quantizes a float32 checkpoint of a zoo model to int8
// (quant/quantized_model.h): calibrates the activations on the first
// --calibration_batches shuffled batches of the Fashion-MNIST training set,
// writes the quantized checkpoint and prints, layer by layer, what runs in
// int8 and what falls back to float32.
//
//   bazel run //tools:quantize -- --checkpoint=/tmp/lenet/model.safetensors
//   --calibration_batches=8 --calibration=percentile
//   --out=/tmp/lenet/model_int8.safetensors
//   bazel run //tools:eval -- --precision=int8
//   --checkpoint=/tmp/lenet/model_int8.safetensors
//
// --model and --resize default to what the checkpoint's metadata records.
// --reduce_range (default auto: on where this CPU's int8 path is avx2, the
// one without VNNI) calibrates the activations to 0..127, for the
// VPMADDUBSW kernels of such CPUs (tensor/qgemm.h's avx2_u7); the file
// records it (dive.reduce_range) and runs exactly on every path.
// The file is written atomically and never over a symlink, a device,
// another user's file or the checkpoint itself.

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "datasets/data_loader.h"
#include "datasets/fashion_mnist.h"
#include "glog/logging.h"
#include "quant/qparams.h"
#include "quant/quantized_model.h"
#include "tensor/cpu.h"
#include "tensor/file_io.h"
#include "tensor/qgemm.h"
#include "tensor/tensor.h"
#include "tools/zoo_checkpoint.h"
#include "train/checkpoint.h"
#include "train/cli.h"
#include "train/options.h"

ABSL_FLAG(std::string, model, "", "Model name (default: from the checkpoint).");
ABSL_FLAG(std::string, checkpoint, "", "A float32 model.safetensors file.");
ABSL_FLAG(std::string, out, "", "The quantized .safetensors file to write.");
ABSL_FLAG(int64_t, resize, 0, "Input size (default: from the checkpoint).");
ABSL_FLAG(int64_t, calibration_batches, 8,
          "Training batches the activation ranges are calibrated on.");
ABSL_FLAG(int64_t, batch_size, 64, "Calibration batch size.");
ABSL_FLAG(std::string, calibration, "minmax",
          "minmax, or percentile: clip the 0.01% of values farthest out.");
ABSL_FLAG(std::string, data_dir, dive::data::kDefaultFashionMnistDir,
          "Directory with the Fashion-MNIST IDX files.");
ABSL_FLAG(uint64_t, seed, 0, "Seeds the shuffle that picks the batches.");
ABSL_FLAG(std::string, reduce_range, "auto",
          "true: calibrate the activations to 0..127 (PyTorch's "
          "reduce_range), one bit coarser, for the VPMADDUBSW kernels of "
          "CPUs with AVX2 and no VNNI (int8 path avx2_u7); false: 0..255; "
          "auto: true where this CPU's int8 path is avx2.");
ABSL_FLAG(int, threads, 0, "Compute threads (0: all cores).");

namespace dive::tools {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
  return 1;
}

int QuantizeMain() {
  const std::string path = absl::GetFlag(FLAGS_checkpoint);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (path.empty() || out.empty()) {
    return Fail(
        absl::InvalidArgumentError("--checkpoint and --out are required"));
  }
  for (const auto& [flag, value] :
       {std::pair<const char*, std::string>{"checkpoint", path},
        {"out", out},
        {"data_dir", absl::GetFlag(FLAGS_data_dir)}}) {
    if (absl::Status s = train::CheckPathFlag(flag, value); !s.ok())
      return Fail(s);
  }
  const int64_t batches = absl::GetFlag(FLAGS_calibration_batches);
  if (batches < 1) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--calibration_batches=", batches, ": must be at least 1")));
  }
  if (absl::GetFlag(FLAGS_batch_size) < 1) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--batch_size=", absl::GetFlag(FLAGS_batch_size),
                     ": must be positive")));
  }
  if (absl::GetFlag(FLAGS_threads) < 0) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--threads=", absl::GetFlag(FLAGS_threads), ": must be >= 0")));
  }
  absl::StatusOr<quant::Calibration> calibration =
      quant::ParseCalibration(absl::GetFlag(FLAGS_calibration));
  if (!calibration.ok()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--calibration=", absl::GetFlag(FLAGS_calibration),
                     ": must be minmax or percentile")));
  }
  absl::StatusOr<bool> reduce_range =
      quant::ParseReduceRange(absl::GetFlag(FLAGS_reduce_range));
  if (!reduce_range.ok()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--", reduce_range.status().message())));
  }
  if (absl::Status s = CheckReplaceable(out); !s.ok()) {
    return Fail(absl::FailedPreconditionError(
        absl::StrCat("--out=", out, ": ", s.message())));
  }
  if (absl::Status s = CheckOutIsNotCheckpoint(out, path, "quantized");
      !s.ok()) {
    return Fail(s);
  }
  SetNumThreads(train::CapThreads(absl::GetFlag(FLAGS_threads)));
  LOG(INFO) << "cpu: " << CpuDescription() << "; int8 kernels: "
            << QGemmPathName(DefaultQGemmPath(*reduce_range))
            << "; reduce_range: " << (*reduce_range ? "true" : "false");

  absl::StatusOr<train::Checkpoint> file = train::ReadCheckpoint(path);
  if (!file.ok()) return Fail(file.status());
  absl::StatusOr<ZooModel> loaded = LoadZooModel(
      *file, path, absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_resize));
  if (!loaded.ok()) return Fail(loaded.status());

  absl::StatusOr<data::InMemoryDataset> train_set = data::LoadFashionMnist(
      absl::GetFlag(FLAGS_data_dir), data::Split::kTrain);
  if (!train_set.ok()) return Fail(train_set.status());
  data::DataLoaderOptions lo;
  lo.batch_size = absl::GetFlag(FLAGS_batch_size);
  lo.sampler.seed = absl::GetFlag(FLAGS_seed);
  lo.prefetch = false;
  lo.transforms.resize = loaded->input_size;
  absl::StatusOr<data::DataLoader> loader =
      data::DataLoader::Create(*train_set, lo);
  if (!loader.ok()) return Fail(loader.status());
  std::vector<Tensor> calibration_batches;
  loader->StartEpoch(0);
  data::Batch batch;
  while (static_cast<int64_t>(calibration_batches.size()) < batches &&
         loader->Next(&batch)) {
    calibration_batches.push_back(batch.images);
  }
  if (static_cast<int64_t>(calibration_batches.size()) < batches) {
    LOG(WARNING) << "the training set has only " << calibration_batches.size()
                 << " batches of " << lo.batch_size << "; calibrating on those";
  }

  quant::QuantizeOptions options;
  options.calibration = *calibration;
  options.reduce_range = *reduce_range;
  absl::StatusOr<std::shared_ptr<quant::QuantizedModel>> q =
      quant::QuantizeModel(loaded->module, calibration_batches, options);
  if (!q.ok()) return Fail(q.status());
  if (absl::Status s = quant::SaveQuantizedModel(
          **q, loaded->name, loaded->input_size,
          {{"dive.calibration", quant::CalibrationName(*calibration)},
           {"dive.calibration_batches",
            absl::StrCat(calibration_batches.size())},
           {"dive.source_checkpoint_crc32", absl::StrCat(file->file.crc32)}},
          out);
      !s.ok()) {
    return Fail(s);
  }
  std::printf("%-14s %-50s %s\n", "layer", "module", "runs as");
  for (const quant::OpPlan& op : (*q)->Ops()) {
    std::printf("%-14s %-50s %s\n", op.name.c_str(), op.describe.c_str(),
                op.how.c_str());
  }
  std::printf(
      "wrote %s: %s at %ld x %ld, %s, calibrated (%s%s) on %zu "
      "batches of %ld\n",
      out.c_str(), loaded->name.c_str(), loaded->input_size, loaded->input_size,
      (*q)->Describe().c_str(), quant::CalibrationName(*calibration),
      *reduce_range ? ", reduce_range: 0..127" : "", calibration_batches.size(),
      lo.batch_size);
  return 0;
}

}  // namespace
}  // namespace dive::tools

int main(int argc, char** argv) {
  dive::ReopenClosedStandardFds();
  absl::SetProgramUsageMessage(
      "Quantizes a float32 checkpoint to int8 (calibrated on training "
      "batches).");
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  absl::StatusOr<bool> go_on = dive::train::ParseFlags(argc, argv);
  if (!go_on.ok()) return dive::tools::Fail(go_on.status());
  if (!*go_on) return 0;
  return dive::tools::QuantizeMain();
}
