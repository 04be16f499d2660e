#include "train/metrics_log.h"

#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "glog/logging.h"
#include "tensor/file_io.h"
#include "train/plot.h"

namespace dive::train {
namespace {

constexpr char kCsvHeader[] =
    "epoch,loss,train_acc,test_acc,seconds,examples_per_sec\n";

// metrics.csv is small; anything larger is not ours.
constexpr uint64_t kMaxCsvBytes = uint64_t{64} << 20;

// The text of the metrics CSV at `path` (never through a symlink), or ""
// when there is none.
absl::StatusOr<std::string> ReadCsv(const std::string& path) {
  absl::StatusOr<std::string> text =
      ReadRegularFile(path, "metrics", kMaxCsvBytes, /*follow_symlink=*/false);
  if (absl::IsNotFound(text.status())) return std::string();
  return text;
}

// Adds the row of `m` to the CSV at `path` (a new file with its header when
// `fresh`), replacing the file atomically; returns the new text.
absl::StatusOr<std::string> AppendCsv(const std::string& path,
                                      const EpochMetrics& m, bool fresh) {
  std::string text;
  if (!fresh) {
    absl::StatusOr<std::string> old = ReadCsv(path);
    if (!old.ok()) return old.status();
    text = *std::move(old);
  }
  if (text.empty()) text = kCsvHeader;
  absl::StrAppend(
      &text,
      absl::StrFormat("%d,%.6f,%.6f,%.6f,%.3f,%.1f\n", m.epoch, m.loss,
                      m.train_acc, m.test_acc, m.seconds, m.examples_per_sec));
  if (absl::Status s = WriteFileAtomically(path, text); !s.ok()) return s;
  return text;
}

}  // namespace

MetricsObserver::MetricsObserver(const std::string& dir, std::string title,
                                 bool fresh)
    : csv_(dir + "/metrics.csv"),
      png_(dir + "/metrics.png"),
      title_(std::move(title)),
      fresh_(fresh) {}

absl::Status MetricsObserver::OnEpoch(const TrainState&,
                                      const EpochMetrics& m) {
  absl::StatusOr<std::string> text = AppendCsv(csv_, m, fresh_);
  if (!text.ok()) return text.status();
  fresh_ = false;
  absl::Status plotted = WritePng(png_, PlotScript(*text, title_));
  LOG_IF(WARNING, !plotted.ok()) << "no plot: " << plotted;
  return absl::OkStatus();
}

absl::Status TrimMetricsCsv(const std::string& path, int64_t last_epoch) {
  absl::StatusOr<std::string> text = ReadCsv(path);
  if (!text.ok()) return text.status();
  std::string kept = kCsvHeader;
  int64_t previous = 0;
  std::vector<absl::string_view> lines = absl::StrSplit(*text, '\n');
  lines.pop_back();  // after the last newline: empty, or a partial row
  for (absl::string_view line : lines) {
    const std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
    int64_t epoch = 0;
    if (fields.size() != 6 || !absl::SimpleAtoi(fields[0], &epoch) ||
        epoch <= previous || epoch > last_epoch) {
      continue;
    }
    absl::StrAppend(&kept, line, "\n");
    previous = epoch;
  }
  return WriteFileAtomically(path, kept);
}

}  // namespace dive::train
