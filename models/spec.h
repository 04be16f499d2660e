// File: models/spec.h
// -----------------------------------------------------------------------------
//
// `ModelSpec` describes one architecture of the model zoo: its name, how to
// build it for a given input resolution, and the book's training recipe
// (Dive into Deep Learning, PyTorch edition) used as the trainer's defaults.
// Each package under models/ exports one or more specs; `models/zoo.h` lists
// them all for tools that pick a model by name.
//
// Example:
//
//   const dive::models::ModelSpec spec = dive::models::LeNetSpec();
//   absl::StatusOr<std::shared_ptr<dive::nn::Module>> net =
//       spec.make(spec.recipe.input_size);
//   if (!net.ok()) return net.status();   // e.g. an unsupported input size
//
// A package's spec for an architecture that takes sizes in [min, max]:
//
//   SetSizeCheckedMake(spec, "LeNet", 12, 512,
//                      [](int64_t size) { return LeNet(size); });

#ifndef MODELS_SPEC_H_
#define MODELS_SPEC_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "nn/module.h"

namespace dive::models {

// The book's hyperparameters for Fashion-MNIST.
struct Recipe {
  float lr = 0.1f;
  int64_t batch_size = 256;
  int64_t epochs = 10;
  // Side of the square input images; Fashion-MNIST's 28 x 28 images are
  // resized (bilinear) when this differs from 28.
  int64_t input_size = 28;
};

// Builds a network for input_size x input_size images (see ModelSpec::make).
using ModelFactory = std::function<absl::StatusOr<std::shared_ptr<nn::Module>>(
    int64_t input_size)>;

struct ModelSpec {
  std::string name;         // "lenet", as in //models/lenet
  std::string description;  // one line for --help and logs
  Recipe recipe;
  // The input sizes `make` takes, [min_input_size, max_input_size].
  int64_t min_input_size = 1;
  int64_t max_input_size = 512;
  // A small input size at which the whole architecture runs in well under a
  // second: what quick checks of the complete model use (the PyTorch step
  // parity test, the twin round trip).
  int64_t quick_input_size = 28;
  // Whether under bf16 its activations are kept channels-last between the
  // convolutions oneDNN runs (tensor/conv.h SetConvMemoryFormat), in
  // training and in inference: where that measured faster
  // (bench/throughput, 2 threads of a Zen 5, alternating runs; the
  // trainers' and tools' --memory_format=auto).
  bool channels_last_training = false;
  bool channels_last_inference = false;
  // Builds the network (with freshly initialized weights drawn from
  // dive::DefaultGenerator()) for input_size x input_size single-channel
  // images and 10 classes; InvalidArgument naming the model and the size
  // when the architecture cannot take that input size.
  ModelFactory make;
};

// InvalidArgument("<model> needs ...") for a size outside [min, max]; use
// max = min for architectures with a fixed input size.
absl::Status CheckInputSize(const std::string& model, int64_t input_size,
                            int64_t min, int64_t max);

// SetSizeCheckedMake()
//
// Sets `spec`'s input size range to [min, max] and its `make` to one that
// returns `CheckInputSize(model, size, min, max)`'s error for a size outside
// it and `build(size)` otherwise.
void SetSizeCheckedMake(
    ModelSpec& spec, std::string model, int64_t min, int64_t max,
    std::function<std::shared_ptr<nn::Module>(int64_t input_size)> build);

}  // namespace dive::models

#endif  // MODELS_SPEC_H_
