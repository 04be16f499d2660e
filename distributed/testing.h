// File: distributed/testing.h
// -----------------------------------------------------------------------------
//
// Test helpers for launching processes under mpirun: run a shell command with
// a time limit and capture its output, and the environment that keeps
// LeakSanitizer from failing every rank under --config=asan.
//
// Example:
//
//   RunResult r = RunCommand(MpiEnv() + "mpirun -np 2 worker", /*limit_s=*/60);
//   EXPECT_EQ(r.exit_code, 0) << r.output;

#ifndef DISTRIBUTED_TESTING_H_
#define DISTRIBUTED_TESTING_H_

#include <string>

namespace dive::distributed {

struct RunResult {
  int exit_code = -1;
  double seconds = 0;
  std::string output;  // stdout and stderr
};

// Runs `command` through the shell, killed after `limit_s` seconds.
RunResult RunCommand(const std::string& command, int limit_s);

// "env ASAN_OPTIONS=...detect_leaks=0 ": Open MPI's own allocations (plugins,
// hwloc) outlive MPI_Finalize, so leak checking is off for the ranks while
// address checking stays on. Binaries built without ASan ignore it.
std::string MpiEnv();

}  // namespace dive::distributed

#endif  // DISTRIBUTED_TESTING_H_
