// File: train/progress.h
// -----------------------------------------------------------------------------
//
// `ProgressObserver`: a line that redraws itself after each step on a
// terminal (else a log line every `log_every` steps), and the book's line
// after each epoch:
//
//   epoch 3: loss 0.412, train acc 0.851, test acc 0.838, 41203.5 examples/sec

#ifndef TRAIN_PROGRESS_H_
#define TRAIN_PROGRESS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "train/observer.h"

namespace dive::train {

class ProgressObserver : public TrainObserver {
 public:
  // `show_steps` false: the epoch lines only.
  ProgressObserver(bool show_steps, int64_t log_every);
  // Clears the bar, also when training stopped early.
  ~ProgressObserver() override;

  absl::Status OnStep(const TrainState& state, const StepInfo& info) override;
  absl::Status OnEpoch(const TrainState& state, const EpochMetrics& m) override;

 private:
  void ClearLine();

  const bool tty_, show_steps_;
  const int64_t log_every_;
};

}  // namespace dive::train

#endif  // TRAIN_PROGRESS_H_
