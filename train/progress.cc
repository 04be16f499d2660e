#include "train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "absl/strings/str_format.h"
#include "glog/logging.h"

namespace dive::train {

ProgressObserver::ProgressObserver(bool show_steps, int64_t log_every)
    : tty_(show_steps && isatty(STDERR_FILENO)),
      show_steps_(show_steps),
      log_every_(log_every) {}

ProgressObserver::~ProgressObserver() { ClearLine(); }

absl::Status ProgressObserver::OnStep(const TrainState& state,
                                      const StepInfo& info) {
  if (!show_steps_) return absl::OkStatus();
  const int64_t step = state.position.step, total = info.steps_per_epoch;
  const double seconds = state.totals.seconds;
  const double rate = state.totals.seen / std::max(seconds, 1e-9);
  const double loss =
      state.totals.loss_sum / std::max<int64_t>(state.totals.seen, 1);
  if (tty_) {
    constexpr int kWidth = 30;
    const int filled =
        static_cast<int>(kWidth * step / std::max<int64_t>(total, 1));
    const double eta = (total - step) * seconds / std::max<int64_t>(step, 1);
    std::fprintf(stderr,
                 "\r  [%s%s] %ld/%ld  loss %.4f  lr %.3g  %.0f ex/s  ETA %.0fs ",
                 std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, '.').c_str(), step, total, loss,
                 info.lr, rate, eta);
    std::fflush(stderr);
  } else if (step % log_every_ == 0 || step == total) {
    LOG(INFO) << absl::StrFormat(
        "step %d/%d  loss %.4f  lr %.3g  %.0f examples/s", step, total, loss,
        info.lr, rate);
  }
  return absl::OkStatus();
}

absl::Status ProgressObserver::OnEpoch(const TrainState&,
                                       const EpochMetrics& m) {
  ClearLine();
  std::printf(
      "epoch %ld: loss %.3f, train acc %.3f, test acc %.3f, %.1f "
      "examples/sec\n",
      m.epoch, m.loss, m.train_acc, m.test_acc, m.examples_per_sec);
  std::fflush(stdout);
  return absl::OkStatus();
}

void ProgressObserver::ClearLine() {
  if (tty_) std::fprintf(stderr, "\r%*s\r", 100, "");
}

}  // namespace dive::train
