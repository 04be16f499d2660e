// File: train/stop.h
// -----------------------------------------------------------------------------
//
// Asking a running `Train` to stop: SIGINT or SIGTERM (or `RequestStop`)
// makes it checkpoint after its current step and return Cancelled, so that
// the run can go on later with --resume; a second signal of the same kind
// ends the process at once.
//
// Example (train/trainer_main.cc):
//
//   InstallStopHandlers();
//   absl::StatusOr<TrainSummary> summary = Train(...);
//   if (absl::IsCancelled(summary.status())) return 128 + StoppedBySignal();

#ifndef TRAIN_STOP_H_
#define TRAIN_STOP_H_

namespace dive::train {

// Asks a running `Train` to checkpoint after its current step and return
// Cancelled; `signal` (SIGINT, SIGTERM) names the reason. Async-signal-safe.
void RequestStop(int signal);

// Installs SIGINT and SIGTERM handlers that call RequestStop; a second
// signal of the same kind ends the process at once.
void InstallStopHandlers();

// True once a stop was requested and not yet honoured by `Train` (what a
// trainer that outlives training, `--dashboard_keep`, waits for).
bool StopRequested();

// For `Train`, stopping: takes the pending request and returns its signal,
// SIGTERM when the request came to another rank of the run. That signal is
// what `StoppedBySignal` reports from then on.
int HonourStop();

// The signal of the last stop `Train` honoured (0: none), for the exit code.
int StoppedBySignal();

}  // namespace dive::train

#endif  // TRAIN_STOP_H_
