// Writes, for every zoo model (or --model), what the ONNX Runtime parity test
// (tools/onnx_parity_test.sh) compares: <out_dir>/<model>.onnx, exported at
// the model's quick input size, and <out_dir>/<model>.safetensors holding 16
// Fashion-MNIST test images ("images") and dive's logits for them
// ("logits"). The weights are a fixed-seed initialization with the
// BatchNorm running statistics set to random values, so that inference-form
// BatchNorm is exercised; the graph is traced with a batch of 2 and run with
// 16, which exercises the dynamic batch.
//
//   bazel run //tools:onnx_parity_case -- --out_dir=/tmp/onnx_parity

#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "autograd/variable.h"
#include "datasets/data_loader.h"
#include "datasets/fashion_mnist.h"
#include "glog/logging.h"
#include "models/zoo.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tools/onnx_export.h"
#include "train/cli.h"

ABSL_FLAG(std::string, out_dir, "", "Directory to write the cases into.");
ABSL_FLAG(std::string, models, "", "Comma-separated models (default: all).");
ABSL_FLAG(std::string, data_dir, dive::data::kDefaultFashionMnistDir,
          "Directory with the Fashion-MNIST IDX files.");

namespace dive::tools {
namespace {

constexpr int64_t kImages = 16;
constexpr uint64_t kSeed = 2026;

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
  return 1;
}

absl::Status WriteCase(const models::ModelSpec& spec,
                       const data::InMemoryDataset& test,
                       const std::string& dir) {
  ManualSeed(kSeed);
  const int64_t size = spec.quick_input_size;
  absl::StatusOr<std::shared_ptr<nn::Module>> model = spec.make(size);
  if (!model.ok()) return model.status();
  for (auto& [name, t] : (*model)->StateDict()) {
    if (absl::EndsWith(name, "running_mean")) {
      t.CopyFrom(Normal(t.shape(), 0.0f, 0.1f));
    } else if (absl::EndsWith(name, "running_var")) {
      t.CopyFrom(Uniform(t.shape(), 0.5f, 1.5f));
    }
  }
  if (absl::Status s = WriteOnnx(**model, {2, 1, size, size}, spec.name,
                                 absl::StrCat(dir, "/", spec.name, ".onnx"));
      !s.ok()) {
    return s;
  }
  data::DataLoaderOptions lo;
  lo.batch_size = kImages;
  lo.sampler.shuffle = false;
  lo.prefetch = false;
  lo.transforms.resize = size;
  absl::StatusOr<data::DataLoader> loader = data::DataLoader::Create(test, lo);
  if (!loader.ok()) return loader.status();
  const data::Batch batch = loader->MakeBatch(0, 0);
  (*model)->Eval();
  autograd::NoGradGuard no_grad;
  SafetensorsFile out;
  out.tensors["images"] = batch.images;
  out.tensors["logits"] = (**model)(autograd::Variable(batch.images)).data();
  return SaveSafetensors(absl::StrCat(dir, "/", spec.name, ".safetensors"),
                         out);
}

int Main() {
  const std::string dir = absl::GetFlag(FLAGS_out_dir);
  if (dir.empty()) {
    return Fail(absl::InvalidArgumentError("--out_dir is required"));
  }
  if (absl::Status s = train::CheckPathFlag("out_dir", dir); !s.ok())
    return Fail(s);
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
    if (absl::Status s = WriteCase(spec, *test, dir); !s.ok()) {
      return Fail(
          absl::Status(s.code(), absl::StrCat(spec.name, ": ", s.message())));
    }
    std::printf("%s: wrote %s/%s.onnx (input %ld x %ld)\n", spec.name.c_str(),
                dir.c_str(), spec.name.c_str(), spec.quick_input_size,
                spec.quick_input_size);
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
