#include "cheatsheet/sheet_main.h"

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "glog/logging.h"

namespace dive::cheatsheet {

void InitSheetMain(int argc, char** argv) {
  // --help lists the sheet's own flags wherever in cheatsheet/ they are
  // defined (--out is in sheet_figure.cc), not only those of the main file.
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "cheatsheet/");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(absl::StrCat(
      "a section of the cheat sheet, made executable: prints its formulas "
      "beside dive's numbers.\nUsage: bazel run //cheatsheet:",
      argc > 0 ? absl::string_view(argv[0]).substr(
                     absl::string_view(argv[0]).rfind('/') + 1)
               : "<section>",
      " -- [flags]"));
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
}

}  // namespace dive::cheatsheet
