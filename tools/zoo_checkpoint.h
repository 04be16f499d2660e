// File: tools/zoo_checkpoint.h
// -----------------------------------------------------------------------------
//
// The zoo model a checkpoint holds, built and loaded, for the tools that
// read checkpoints (//tools:eval, //tools:export_onnx).

#ifndef TOOLS_ZOO_CHECKPOINT_H_
#define TOOLS_ZOO_CHECKPOINT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nn/module.h"
#include "train/checkpoint.h"

namespace dive::tools {

struct ZooModel {
  std::string name;
  int64_t input_size = 0;
  std::shared_ptr<nn::Module> module;
};

// Builds model `name` (empty: the one `file`, read from `path`, records) for
// `resize` x `resize` inputs (0: the checkpoint's size, else the recipe's)
// and loads the checkpoint's weights into it. InvalidArgument naming the
// checkpoint, the model or the size when they do not fit, and for a
// quantized (int8) checkpoint.
absl::StatusOr<ZooModel> LoadZooModel(const train::Checkpoint& file,
                                      const std::string& path, std::string name,
                                      int64_t resize);

// InvalidArgument "--out=<out>: is the checkpoint being <verb>; choose
// another file" when `out` exists and is the file `checkpoint` (the same
// device and inode, through any link): a tool that reads one and writes the
// other must not replace its own input.
absl::Status CheckOutIsNotCheckpoint(const std::string& out,
                                     const std::string& checkpoint,
                                     const char* verb);

}  // namespace dive::tools

#endif  // TOOLS_ZOO_CHECKPOINT_H_
