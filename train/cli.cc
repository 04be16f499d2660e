#include "train/cli.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "tensor/text.h"

namespace dive::train {
namespace {

// What the flag is when not given.
std::string Default(const absl::CommandLineFlag& flag,
                    const std::map<std::string, std::string>& defaults) {
  std::string def = flag.DefaultValue();
  if (def.empty() && !flag.IsOfType<std::string>()) {
    auto it = defaults.find(std::string(flag.Name()));
    def = it != defaults.end() ? it->second : "unset";
  }
  return def;
}

// Prints the usage message and the flags (all of them when `full`, else
// those not defined by absl itself), sorted by name, with their defaults.
void PrintHelp(bool full, const std::map<std::string, std::string>& defaults) {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (full || !absl::StrContains(flag->Filename(), "absl/")) {
      flags.push_back(flag);
    }
  }
  std::sort(flags.begin(), flags.end(),
            [](const absl::CommandLineFlag* a, const absl::CommandLineFlag* b) {
              return a->Name() < b->Name();
            });
  std::string out = absl::StrCat(absl::ProgramUsageMessage(), "\n\nFlags:\n");
  for (const absl::CommandLineFlag* flag : flags) {
    std::string def = Default(*flag, defaults);
    if (flag->IsOfType<std::string>()) def = absl::StrCat("\"", def, "\"");
    absl::StrAppend(&out, "  --", flag->Name(), "  ", flag->Help(),
                    "\n      default: ", def, "\n");
  }
  if (!full) absl::StrAppend(&out, "\n--helpfull lists every flag.\n");
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace

absl::StatusOr<bool> ParseFlags(
    int argc, char** argv, const std::map<std::string, std::string>& defaults) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--help" || arg == "-help" || arg == "--helpshort" ||
        arg == "-helpshort" || arg == "--helpfull" || arg == "-helpfull") {
      PrintHelp(absl::EndsWith(arg, "full"), defaults);
      return false;
    }
    // An empty value (--name= or --name "") for a flag that is not a
    // string.
    const bool empty_after_equals =
        absl::StartsWith(arg, "-") && absl::EndsWith(arg, "=");
    const bool empty_next = absl::StartsWith(arg, "-") &&
                            !absl::StrContains(arg, "=") && i + 1 < argc &&
                            argv[i + 1][0] == '\0';
    if (empty_after_equals || empty_next) {
      absl::string_view name = absl::StripSuffix(arg, "=");
      while (absl::ConsumePrefix(&name, "-")) {
      }
      const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
      if (flag != nullptr && !flag->IsOfType<std::string>() &&
          !flag->IsOfType<bool>()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name,
                         "=: empty value; give a value or leave the flag out "
                         "(default: ",
                         Default(*flag, defaults), ")"));
      }
    }
  }
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", Printable(positional[1]),
                     "': flags take the form --name=value (for a boolean flag, "
                     "--name=false or --noname); see --help"));
  }
  return true;
}

absl::StatusOr<MatmulPrecision> ParsePrecision(absl::string_view value) {
  if (value == "fp32") return MatmulPrecision::kFloat32;
  if (value == "bf16") return MatmulPrecision::kBfloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("--precision=", value, ": must be fp32 or bf16"));
}

absl::StatusOr<MemoryFormat> ParseMemoryFormat(absl::string_view value,
                                               const models::ModelSpec& spec,
                                               bool training) {
  if (value == "contiguous") return MemoryFormat::kContiguous;
  if (value == "channels_last") return MemoryFormat::kChannelsLast;
  if (value == "auto") {
    return (training ? spec.channels_last_training
                     : spec.channels_last_inference)
               ? MemoryFormat::kChannelsLast
               : MemoryFormat::kContiguous;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--memory_format=", value,
                   ": must be auto, contiguous or channels_last"));
}

absl::Status CheckPathFlag(absl::string_view flag, absl::string_view path) {
  for (size_t i = 0; i < path.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(path[i]);
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--%s=\"%s\": byte %d is a control character (0x%02x); paths "
          "may not contain control characters",
          flag, Printable(path), i, c));
    }
  }
  return absl::OkStatus();
}

}  // namespace dive::train
