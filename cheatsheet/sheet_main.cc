#include "cheatsheet/sheet_main.h"

#include "absl/flags/parse.h"
#include "glog/logging.h"

namespace dive::cheatsheet {

void InitSheetMain(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
}

}  // namespace dive::cheatsheet
