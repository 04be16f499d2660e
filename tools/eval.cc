// Evaluates a checkpoint on the Fashion-MNIST test set: accuracy and the
// confusion matrix.
//
//   bazel run //tools:eval -- --model=lenet
//   --checkpoint=/tmp/lenet/model.safetensors
//   bazel run //tools:eval -- --precision=int8
//   --checkpoint=/tmp/lenet/model_int8.safetensors     # //tools:quantize's
//
// --model and --resize default to what the checkpoint's metadata records.
// --dump=FILE also writes the first --limit test images (as fed to the model)
// and the model's logits to a safetensors file, which
// `models/pytorch_twins.py compare` feeds to the PyTorch twin. It is written
// atomically and never over a symlink, a device, another user's file or the
// checkpoint itself.

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "autograd/variable.h"
#include "datasets/data_loader.h"
#include "datasets/fashion_mnist.h"
#include "glog/logging.h"
#include "models/zoo.h"
#include "quant/quantized_model.h"
#include "tensor/conv.h"
#include "tensor/cpu.h"
#include "tensor/file_io.h"
#include "tensor/gemm.h"
#include "tensor/qgemm.h"
#include "tensor/safetensors.h"
#include "tools/zoo_checkpoint.h"
#include "train/cli.h"
#include "train/evaluation.h"
#include "train/options.h"

ABSL_FLAG(std::string, model, "", "Model name (default: from the checkpoint).");
ABSL_FLAG(std::string, checkpoint, "", "A model.safetensors file.");
ABSL_FLAG(std::string, data_dir, dive::data::kDefaultFashionMnistDir,
          "Directory with the Fashion-MNIST IDX files.");
ABSL_FLAG(int64_t, resize, 0, "Input size (default: from the checkpoint).");
ABSL_FLAG(int64_t, batch_size, 256, "Evaluation batch size.");
ABSL_FLAG(int64_t, limit, 0, "Evaluate only the first N test images.");
ABSL_FLAG(int, threads, 0, "Compute threads (0: all cores).");
ABSL_FLAG(std::string, precision, "fp32",
          "fp32; bf16: convolution and Linear multiply bf16 operands; int8: "
          "a quantized checkpoint (//tools:quantize) on the int8 kernels.");
ABSL_FLAG(std::string, memory_format, "auto",
          "Under bf16, the layout of the activations between oneDNN's "
          "convolutions: channels_last, contiguous (NCHW), or auto: the "
          "model's measured choice for inference.");
ABSL_FLAG(std::string, dump, "",
          "Write the first --limit images and their logits to this file.");

namespace dive::tools {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "error: %s\n", std::string(status.message()).c_str());
  return 1;
}

namespace {

absl::StatusOr<ZooModel> LoadFloatModel(const std::string& path) {
  absl::StatusOr<train::Checkpoint> file = train::ReadCheckpoint(path);
  if (!file.ok()) return file.status();
  return LoadZooModel(*file, path, absl::GetFlag(FLAGS_model),
                      absl::GetFlag(FLAGS_resize));
}

// The int8 model of a quantized checkpoint: its model and size are the
// ones it was quantized for, so --model and --resize may only repeat them.
absl::StatusOr<ZooModel> LoadInt8Model(const std::string& path) {
  absl::StatusOr<quant::LoadedQuantizedModel> q =
      quant::LoadQuantizedModel(path);
  if (!q.ok()) return q.status();
  const std::string model = absl::GetFlag(FLAGS_model);
  const int64_t resize = absl::GetFlag(FLAGS_resize);
  if ((!model.empty() && model != q->name) ||
      (resize != 0 && resize != q->input_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " holds ", q->name, " quantized at ", q->input_size, " x ",
        q->input_size, "; --model and --resize cannot change that"));
  }
  LOG(INFO) << "int8 kernels: "
            << QGemmPathName(DefaultQGemmPath(q->model->reduce_range()))
            << (q->model->reduce_range() ? " (reduce_range: 0..127)" : "");
  return ZooModel{q->name, q->input_size, q->model};
}

int EvalMain() {
  const std::string path = absl::GetFlag(FLAGS_checkpoint);
  if (path.empty())
    return Fail(absl::InvalidArgumentError("--checkpoint is required"));
  // int8 takes a quantized checkpoint (//tools:quantize) and runs it on the
  // int8 kernels; fp32 and bf16 take a float32 one.
  const bool int8 = absl::GetFlag(FLAGS_precision) == "int8";
  absl::StatusOr<MatmulPrecision> precision =
      int8 ? MatmulPrecision::kFloat32
           : train::ParsePrecision(absl::GetFlag(FLAGS_precision));
  if (!precision.ok()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--precision=", absl::GetFlag(FLAGS_precision),
                     ": must be fp32, bf16 or int8")));
  }
  if (absl::StatusOr<Isa> isa = IsaFromEnvironment(); !isa.ok()) {
    return Fail(isa.status());
  }
  const ScopedMatmulPrecision scope(*precision);
  LOG(INFO) << "cpu: " << CpuDescription();
  for (const auto& [flag, value] :
       {std::pair<const char*, std::string>{"checkpoint", path},
        {"dump", absl::GetFlag(FLAGS_dump)},
        {"data_dir", absl::GetFlag(FLAGS_data_dir)}}) {
    if (absl::Status s = train::CheckPathFlag(flag, value); !s.ok())
      return Fail(s);
  }
  if (absl::GetFlag(FLAGS_batch_size) <= 0) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--batch_size=", absl::GetFlag(FLAGS_batch_size),
                     ": must be positive")));
  }
  if (absl::GetFlag(FLAGS_limit) < 0) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--limit=", absl::GetFlag(FLAGS_limit), ": must be >= 0")));
  }
  if (absl::GetFlag(FLAGS_threads) < 0) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--threads=", absl::GetFlag(FLAGS_threads), ": must be >= 0")));
  }
  const std::string dump = absl::GetFlag(FLAGS_dump);
  if (!dump.empty()) {  // checked before the work, not after it
    if (absl::Status s = CheckReplaceable(dump); !s.ok()) {
      return Fail(absl::FailedPreconditionError(
          absl::StrCat("--dump=", dump, ": ", s.message())));
    }
    const size_t slash = dump.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "."
                            : slash == 0               ? "/"
                                                       : dump.substr(0, slash);
    if (access(dir.c_str(), W_OK) != 0) {
      return Fail(absl::FailedPreconditionError(
          absl::StrCat("--dump=", dump, ": cannot write into ", dir, " (",
                       std::strerror(errno), ")")));
    }
    struct stat d, c;
    if (stat(dump.c_str(), &d) == 0 && stat(path.c_str(), &c) == 0 &&
        d.st_dev == c.st_dev && d.st_ino == c.st_ino) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "--dump=", dump, ": is the checkpoint being evaluated (--checkpoint=",
          path, "); choose another file")));
    }
  }

  SetNumThreads(train::CapThreads(absl::GetFlag(FLAGS_threads)));
  absl::StatusOr<ZooModel> loaded =
      int8 ? LoadInt8Model(path) : LoadFloatModel(path);
  if (!loaded.ok()) return Fail(loaded.status());
  const std::string& name = loaded->name;
  const int64_t size = loaded->input_size;
  nn::Module& model = *loaded->module;
  absl::StatusOr<models::ModelSpec> spec = models::FindModel(name);
  if (!spec.ok()) return Fail(spec.status());
  absl::StatusOr<MemoryFormat> memory_format = train::ParseMemoryFormat(
      absl::GetFlag(FLAGS_memory_format), *spec, /*training=*/false);
  if (!memory_format.ok()) return Fail(memory_format.status());
  const ScopedConvMemoryFormat layout(*memory_format);
  absl::StatusOr<data::InMemoryDataset> test =
      data::LoadFashionMnist(absl::GetFlag(FLAGS_data_dir), data::Split::kTest);
  if (!test.ok()) return Fail(test.status());

  const int64_t limit = absl::GetFlag(FLAGS_limit);
  absl::StatusOr<train::EvalResult> evaluated = train::Evaluate(
      model, *test, size, absl::GetFlag(FLAGS_batch_size), limit);
  if (!evaluated.ok()) return Fail(evaluated.status());
  const train::EvalResult& r = *evaluated;
  std::printf("%s on %s: test acc %.4f\n", name.c_str(), path.c_str(),
              r.accuracy);
  std::printf("confusion matrix (rows: true class, columns: predicted)\n%12s",
              "");
  // One row and column per output of the model: Fashion-MNIST's classes.
  const size_t classes = r.confusion.size();
  for (size_t j = 0; j < classes; ++j) std::printf("%6zu", j);
  std::printf("\n");
  for (size_t i = 0; i < classes; ++i) {
    const auto& names = data::FashionMnistClassNames();
    std::printf("%10s %zu",
                i < names.size() ? std::string(names[i]).c_str() : "", i);
    for (size_t j = 0; j < classes; ++j) std::printf("%6ld", r.confusion[i][j]);
    std::printf("\n");
  }

  if (!dump.empty()) {
    data::DataLoaderOptions lo;
    lo.batch_size = limit > 0 ? limit : 8;
    lo.sampler.shuffle = false;
    lo.prefetch = false;
    lo.transforms.resize = size;  // a no-op for size x size images
    absl::StatusOr<data::DataLoader> loader =
        data::DataLoader::Create(*test, lo);
    if (!loader.ok()) return Fail(loader.status());
    const data::Batch batch = loader->MakeBatch(0, 0);
    model.Eval();
    autograd::NoGradGuard no_grad;
    SafetensorsFile out;
    out.tensors["images"] = batch.images;
    out.tensors["logits"] = model(autograd::Variable(batch.images)).data();
    out.metadata["model"] = name;
    out.metadata["input_size"] = absl::StrCat(size);
    if (absl::Status s = SaveSafetensors(dump, out); !s.ok()) return Fail(s);
    std::printf("wrote %ld images and logits to %s\n", batch.images.dim(0),
                dump.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace dive::tools

int main(int argc, char** argv) {
  dive::ReopenClosedStandardFds();
  absl::SetProgramUsageMessage("Evaluates a checkpoint on Fashion-MNIST.");
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  absl::StatusOr<bool> go_on = dive::train::ParseFlags(argc, argv);
  if (!go_on.ok()) return dive::tools::Fail(go_on.status());
  if (!*go_on) return 0;  // --help
  return dive::tools::EvalMain();
}
