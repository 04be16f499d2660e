// File: train/testing/trainer_process.h
// -----------------------------------------------------------------------------
//
// Trainer binaries (//models/<arch>:train) as child processes, for tests
// that kill them (train/kill_during_save_test.cc): found in the runfiles,
// started with their output appended to a log, waited for, and killed if
// the test returns early.
//
// Example:
//
//   ChildGuard child{Spawn({TrainerPath("mlp"), "--out=" + dir}, log)};
//   ASSERT_TRUE(WaitFor([&] { return fs::exists(ckpt); }, child.pid,
//                       std::chrono::seconds(120)))
//       << ReadFile(log);

#ifndef TRAIN_TESTING_TRAINER_PROCESS_H_
#define TRAIN_TESTING_TRAINER_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace dive::train::testing {

// The runfiles path of //models/`model`:train (a test failure and "" when
// the runfiles cannot be found).
std::string TrainerPath(const std::string& model = "mlp");

// Starts `argv` with stdout and stderr appended to `log`; returns its pid.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log);

// Kills the child if a test assertion returns early.
struct ChildGuard {
  pid_t pid;
  ~ChildGuard();
};

// Polls until `done()` or the child exits or `timeout` passes; true if done.
bool WaitFor(const std::function<bool()>& done, pid_t pid,
             std::chrono::milliseconds timeout);

// Runs `argv` to its end; its exit status.
int RunToEnd(const std::vector<std::string>& argv, const std::string& log);

// The file at `path` whole (a child's log, a run's metrics.csv); "" when it
// cannot be read.
std::string ReadFile(const std::string& path);

}  // namespace dive::train::testing

#endif  // TRAIN_TESTING_TRAINER_PROCESS_H_
