// File: train/run_dir.h
// -----------------------------------------------------------------------------
//
// A run's directory (--out): what a run writes there (checkpoint pair,
// metrics.csv, metrics.png, each also as "<name>.tmp") and the checks that
// keep it safe in a shared place such as /tmp:
//
//   * `RunDir::Claim` creates the directory if needed and refuses one that
//     cannot be written or belongs to another user (who could plant files
//     in it), takes an exclusive lock for as long as the run lasts (a second
//     run on the same directory is refused, naming the holder's pid), and
//     refuses a symbolic link, device or other user's file planted where the
//     run will write. It changes nothing in the directory but its lock file.
//   * Without --resume or --overwrite, a directory that already holds a run
//     is refused (`RefuseAnExistingRun`) before anything in it changes.
//   * Once the run is accepted, `RemoveLeftovers` deletes what a killed run
//     left half-written, so that the first save starts clean.
//
// Example:
//
//   absl::StatusOr<std::unique_ptr<RunDir>> dir = RunDir::Claim("/tmp/lenet");
//   if (!dir.ok()) return dir.status();
//   if (absl::Status s = (*dir)->RefuseAnExistingRun(); !s.ok()) return s;
//   (*dir)->RemoveLeftovers();

#ifndef TRAIN_RUN_DIR_H_
#define TRAIN_RUN_DIR_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dive::train {

class RunDir {
 public:
  // Claim()
  //
  // Prepares and locks `path` as above. FailedPrecondition naming --out and
  // the problem: cannot be created or written, another user's, locked by
  // another run (its pid), or a file in it that may not be replaced.
  static absl::StatusOr<std::unique_ptr<RunDir>> Claim(const std::string& path);

  // Releases the lock.
  ~RunDir();
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;

  // RefuseAnExistingRun()
  //
  // OK unless the directory holds a run (its weights, training state or
  // metrics): FailedPrecondition naming what it found and --resume and
  // --overwrite. Changes nothing.
  absl::Status RefuseAnExistingRun() const;

  // RemoveLeftovers()
  //
  // Removes the temporary files a killed run left behind, and pending
  // weights that no checkpoint of this run names (a save cut short before
  // its commit, or the run that --overwrite replaces). Call once the run is
  // accepted: after `RefuseAnExistingRun`, or after resuming (which
  // publishes the pending weights of a save cut short after its commit).
  void RemoveLeftovers() const;

  const std::string& path() const { return path_; }

 private:
  RunDir(std::string path, int lock_fd);

  const std::string path_;
  const int lock_fd_;
};

}  // namespace dive::train

#endif  // TRAIN_RUN_DIR_H_
