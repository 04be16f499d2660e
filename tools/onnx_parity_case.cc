// Writes, for every zoo model (or --models), what the ONNX Runtime parity
// tests (tools/onnx_parity_test.sh) compare: <out_dir>/<model>.onnx,
// exported at the model's quick input size, and <out_dir>/<model>.safetensors
// holding --images Fashion-MNIST test images ("images") and dive's logits for
// them ("logits"). The graph is exported at a batch of 2 and run with
// --images, which exercises the dynamic batch.
//
// The weights are a fixed-seed initialization with the BatchNorm running
// statistics set to random values, so that inference-form BatchNorm is
// exercised.
//
// With --int8 the model is quantized to int8 and exported as a QDQ graph
// (tools/onnx_export.h's WriteQuantizedOnnx), and the logits are dive's int8
// ones. The biases are then also set to small random values (so that the int8
// bias and the folded and table BatchNorms are exercised), and the model is
// calibrated (min/max) on 4 batches of 32 other test images (from image 5120
// on).
//
//   bazel run //tools:onnx_parity_case -- --out_dir=/tmp/onnx_parity
//   bazel run //tools:onnx_parity_case -- --int8 --images=1000 --out_dir=/tmp
//   bazel run //tools:onnx_parity_case -- --int8 --reduce_range --out_dir=/tmp

#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "autograd/variable.h"
#include "datasets/data_loader.h"
#include "datasets/fashion_mnist.h"
#include "glog/logging.h"
#include "models/zoo.h"
#include "quant/quantized_model.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tools/onnx_export.h"
#include "train/cli.h"

ABSL_FLAG(std::string, out_dir, "", "Directory to write the cases into.");
ABSL_FLAG(std::string, models, "", "Comma-separated models (default: all).");
ABSL_FLAG(bool, int8, false,
          "Quantize the models to int8 and export them as QDQ graphs.");
ABSL_FLAG(bool, reduce_range, false,
          "With --int8: quantize with reduce_range (activations 0..127).");
ABSL_FLAG(int64_t, images, 0,
          "Test images to compare on (default: 16, with --int8 256).");
ABSL_FLAG(std::string, data_dir, dive::data::kDefaultFashionMnistDir,
          "Directory with the Fashion-MNIST IDX files.");

namespace dive::tools {
namespace {

constexpr uint64_t kSeed = 2026;
constexpr int64_t kDefaultImages = 16;
constexpr int64_t kDefaultInt8Images = 256;
constexpr int64_t kCalibrationBatches = 4;
constexpr int64_t kCalibrationBatchSize = 32;
constexpr int64_t kCalibrationFirstImage = 5120;

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
  return 1;
}

// The test images [first, first + count) at `size` x `size`.
absl::StatusOr<Tensor> Images(const data::InMemoryDataset& test, int64_t size,
                              int64_t first, int64_t count) {
  data::DataLoaderOptions lo;
  lo.batch_size = count;
  lo.sampler.shuffle = false;
  lo.prefetch = false;
  lo.transforms.resize = size;
  absl::StatusOr<data::DataLoader> loader = data::DataLoader::Create(test, lo);
  if (!loader.ok()) return loader.status();
  if (first % count != 0) {
    return absl::InternalError("first image not a multiple of the count");
  }
  return loader->MakeBatch(0, first / count).images;
}

// Exports the float32 model and returns its logits on `x`.
absl::StatusOr<Tensor> ExportFloat(nn::Module& model, const std::string& name,
                                   int64_t size, const std::string& path,
                                   const Tensor& x) {
  if (absl::Status s = WriteOnnx(model, {2, 1, size, size}, name, path);
      !s.ok()) {
    return s;
  }
  model.Eval();
  autograd::NoGradGuard no_grad;
  return model(autograd::Variable(x)).data();
}

// Quantizes the model to int8, exports it as a QDQ graph and returns its
// int8 logits on `x`.
absl::StatusOr<Tensor> ExportInt8(std::shared_ptr<nn::Module> model,
                                  const data::InMemoryDataset& test,
                                  const std::string& name, int64_t size,
                                  const std::string& path, const Tensor& x) {
  std::vector<Tensor> calibration;
  for (int64_t b = 0; b < kCalibrationBatches; ++b) {
    absl::StatusOr<Tensor> batch =
        Images(test, size, kCalibrationFirstImage + b * kCalibrationBatchSize,
               kCalibrationBatchSize);
    if (!batch.ok()) return batch.status();
    calibration.push_back(*batch);
  }
  absl::StatusOr<std::shared_ptr<quant::QuantizedModel>> q =
      quant::QuantizeModel(model, calibration,
                           {.reduce_range = absl::GetFlag(FLAGS_reduce_range)});
  if (!q.ok()) return q.status();
  if (absl::Status s = WriteQuantizedOnnx(**q, {2, 1, size, size}, name, path);
      !s.ok()) {
    return s;
  }
  autograd::NoGradGuard no_grad;
  return (**q)(autograd::Variable(x)).data();
}

absl::Status WriteCase(const models::ModelSpec& spec,
                       const data::InMemoryDataset& test, bool int8,
                       int64_t images, const std::string& dir) {
  ManualSeed(kSeed);
  const int64_t size = spec.quick_input_size;
  absl::StatusOr<std::shared_ptr<nn::Module>> model = spec.make(size);
  if (!model.ok()) return model.status();
  for (auto& [name, t] : (*model)->StateDict()) {
    if (absl::EndsWith(name, "running_mean")) {
      t.CopyFrom(Normal(t.shape(), 0.0f, 0.1f));
    } else if (absl::EndsWith(name, "running_var")) {
      t.CopyFrom(Uniform(t.shape(), 0.5f, 1.5f));
    } else if (int8 && absl::EndsWith(name, "bias")) {
      t.CopyFrom(Uniform(t.shape(), -0.01f, 0.01f));
    }
  }
  const std::string onnx_path = absl::StrCat(dir, "/", spec.name, ".onnx");
  absl::StatusOr<Tensor> x = Images(test, size, 0, images);
  if (!x.ok()) return x.status();
  absl::StatusOr<Tensor> logits =
      int8 ? ExportInt8(*model, test, spec.name, size, onnx_path, *x)
           : ExportFloat(**model, spec.name, size, onnx_path, *x);
  if (!logits.ok()) return logits.status();
  SafetensorsFile out;
  out.tensors["images"] = *x;
  out.tensors["logits"] = *logits;
  return SaveSafetensors(absl::StrCat(dir, "/", spec.name, ".safetensors"),
                         out);
}

int Main() {
  const std::string dir = absl::GetFlag(FLAGS_out_dir);
  const bool int8 = absl::GetFlag(FLAGS_int8);
  int64_t images = absl::GetFlag(FLAGS_images);
  if (images == 0) images = int8 ? kDefaultInt8Images : kDefaultImages;
  if (dir.empty()) {
    return Fail(absl::InvalidArgumentError("--out_dir is required"));
  }
  if (absl::Status s = train::CheckPathFlag("out_dir", dir); !s.ok())
    return Fail(s);
  // The calibration images follow the compared ones.
  if (images < 1 || images > kCalibrationFirstImage) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--images must be in [1, ", kCalibrationFirstImage, "]")));
  }
  std::vector<models::ModelSpec> specs;
  if (absl::GetFlag(FLAGS_models).empty()) {
    specs = models::AllModels();
  } else {
    for (absl::string_view name :
         absl::StrSplit(absl::GetFlag(FLAGS_models), ',')) {
      absl::StatusOr<models::ModelSpec> spec =
          models::FindModel(std::string(name));
      if (!spec.ok()) return Fail(spec.status());
      specs.push_back(*spec);
    }
  }
  absl::StatusOr<data::InMemoryDataset> test =
      data::LoadFashionMnist(absl::GetFlag(FLAGS_data_dir), data::Split::kTest);
  if (!test.ok()) return Fail(test.status());
  for (const models::ModelSpec& spec : specs) {
    if (absl::Status s = WriteCase(spec, *test, int8, images, dir); !s.ok()) {
      return Fail(
          absl::Status(s.code(), absl::StrCat(spec.name, ": ", s.message())));
    }
    std::printf("%s: wrote %s/%s.onnx (%sinput %ld x %ld)\n", spec.name.c_str(),
                dir.c_str(), spec.name.c_str(), int8 ? "int8 QDQ, " : "",
                spec.quick_input_size, spec.quick_input_size);
  }
  return 0;
}

}  // namespace
}  // namespace dive::tools

int main(int argc, char** argv) {
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  absl::StatusOr<bool> go_on = dive::train::ParseFlags(argc, argv);
  if (!go_on.ok()) return dive::tools::Fail(go_on.status());
  if (!*go_on) return 0;
  return dive::tools::Main();
}
