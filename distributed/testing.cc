#include "distributed/testing.h"

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace dive::distributed {

RunResult RunCommand(const std::string& command, int limit_s) {
  const std::string full =
      absl::StrCat("timeout --kill-after=5 ", limit_s, " ", command, " 2>&1");
  RunResult r;
  const auto start = std::chrono::steady_clock::now();
  std::FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) {
    r.output.append(buf, n);
  }
  const int status = pclose(pipe);
  r.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return r;
}

std::string MpiEnv() {
  const char* asan = std::getenv("ASAN_OPTIONS");
  return absl::StrCat("env ASAN_OPTIONS=", asan != nullptr ? asan : "",
                      asan != nullptr && *asan != 0 ? ":" : "",
                      "detect_leaks=0 ");
}

}  // namespace dive::distributed
