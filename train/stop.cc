#include "train/stop.h"

#include <csignal>

namespace dive::train {
namespace {

// The signal a stop was requested by (0: none), set by RequestStop.
volatile std::sig_atomic_t stop_signal = 0;
int honoured_signal = 0;

void OnStopSignal(int signal) {
  if (stop_signal == signal) {  // the second Ctrl-C: end now
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  RequestStop(signal);
}

}  // namespace

void RequestStop(int signal) { stop_signal = signal; }

void InstallStopHandlers() {
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
}

bool StopRequested() { return stop_signal != 0; }

int HonourStop() {
  honoured_signal = stop_signal != 0 ? stop_signal : SIGTERM;
  stop_signal = 0;
  return honoured_signal;
}

int StoppedBySignal() { return honoured_signal; }

}  // namespace dive::train
