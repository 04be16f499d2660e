#include "train/testing/trainer_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tools/cpp/runfiles/runfiles.h"

namespace dive::train::testing {

using ::bazel::tools::cpp::runfiles::Runfiles;
using Clock = std::chrono::steady_clock;

std::string TrainerPath(const std::string& model) {
  std::string error;
  std::unique_ptr<Runfiles> runfiles(Runfiles::CreateForTest(&error));
  EXPECT_NE(runfiles, nullptr) << error;
  return runfiles == nullptr ? ""
                             : runfiles->Rlocation(absl::StrCat(
                                   "dive/models/", model, "/train"));
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    std::vector<char*> args;
    for (const std::string& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

ChildGuard::~ChildGuard() {
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
}

bool WaitFor(const std::function<bool()>& done, pid_t pid,
             std::chrono::milliseconds timeout) {
  const Clock::time_point end = Clock::now() + timeout;
  while (Clock::now() < end) {
    if (done()) return true;
    if (waitpid(pid, nullptr, WNOHANG) == pid) return done();
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return done();
}

int RunToEnd(const std::vector<std::string>& argv, const std::string& log) {
  ChildGuard child{Spawn(argv, log)};
  int status = 0;
  EXPECT_EQ(waitpid(child.pid, &status, 0), child.pid);
  child.pid = 0;
  return status;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace dive::train::testing
