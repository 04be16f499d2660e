// File: train/cli.h
// -----------------------------------------------------------------------------
//
// Command-line parsing shared by the trainers and the tools (//tools:eval,
// //tools:export_onnx): absl's ParseCommandLine, plus what a user expects of
// it:
//
//   * --help (also -help, --helpshort) prints the usage message and this
//     program's flags (not absl's own) with their defaults, and exits 0;
//     --helpfull prints every flag. absl alone matches flags by file name
//     ("No flags matched" for the trainers) and exits 1.
//   * an argument that is not a flag (`train out_dir`, or the "false" of
//     `--progress false`) is an error instead of being ignored;
//   * an empty value for a flag that is not a string (`--epochs=`) is an
//     error instead of meaning "unset".
//
// Example:
//
//   absl::StatusOr<bool> go_on = ParseFlags(argc, argv);
//   if (!go_on.ok()) return Fail(go_on.status());
//   if (!*go_on) return 0;  // help printed

#ifndef TRAIN_CLI_H_
#define TRAIN_CLI_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/spec.h"
#include "tensor/gemm.h"
#include "tensor/memory_format.h"

namespace dive::train {

// True to go on, false when help was printed (exit 0), or InvalidArgument
// naming the argument. Flags absl cannot parse end the process as before
// (absl's "ERROR: ..." line, exit 1). `defaults` describes the defaults of
// flags whose own default is "unset" (the trainers: the model's recipe).
absl::StatusOr<bool> ParseFlags(
    int argc, char** argv,
    const std::map<std::string, std::string>& defaults = {});

// The value of a --precision flag: "fp32" or "bf16" (MatmulPrecision), or
// InvalidArgument naming the flag.
absl::StatusOr<MatmulPrecision> ParsePrecision(absl::string_view value);

// The value of a --memory_format flag: "contiguous" or "channels_last", or
// "auto": the choice `spec` records for `training` or inference
// (ModelSpec::channels_last_training, channels_last_inference); else
// InvalidArgument naming the flag.
absl::StatusOr<MemoryFormat> ParseMemoryFormat(absl::string_view value,
                                               const models::ModelSpec& spec,
                                               bool training);

// OK unless `path` (the value of --`flag`) contains a control character
// (a newline, a tab, ...): InvalidArgument naming the flag and the byte.
absl::Status CheckPathFlag(absl::string_view flag, absl::string_view path);

}  // namespace dive::train

#endif  // TRAIN_CLI_H_
