// File: train/trainer_main.h
// -----------------------------------------------------------------------------
//
// `main()` of every `//models/<name>:train` binary: parses the common flags
// (--epochs, --lr, --batch_size, --resize, --threads, --seed, --optimizer,
// --weight_decay, --momentum, --lr_schedule, --lr_step_epochs, --lr_gamma,
// --warmup_epochs, --augment, --clip_grad_norm, --checkpoint_every,
// --train_limit, --test_limit, --data_dir, --out, --resume, --overwrite,
// --skip_nonfinite, --precision; `--help` lists them), fills unset ones from
// the model's book recipe, builds the model, loads Fashion-MNIST and runs
// `train::Train`. Every error (a bad flag, unreadable data, an unwritable
// --out, a diverging run) is printed as one line naming the problem, and the
// process exits 1. SIGINT or SIGTERM checkpoint the current step and exit
// 128 + the signal; `--resume` continues from there.
//
// `--hold_before_epoch=N` is a hook for tests: once epoch N - 1 is written
// and observed, the trainer logs "holding before epoch N" and waits for
// SIGUSR1 (or a stop) before training on, so that a test can look at a run
// that is surely live whatever the machine's speed
// (//train/dashboard:dashboard_browser_test).
//
// Launched by mpirun, the binary trains data-parallel over the launched
// processes (`TrainOptions::process_group`): --batch_size stays the global
// batch, rank 0 prints and writes --out, and an error on any rank ends the
// whole job, as does a collective that waits longer than
// --collective_timeout seconds (a hung rank):
//
//   mpirun -np 2 bazel-bin/models/lenet/train --threads=1
//
// Example (models/lenet/train.cc):
//
//   int main(int argc, char** argv) {
//     return dive::train::TrainerMain(argc, argv, [] {
//       return dive::models::LeNetSpec();
//     });
//   }

#ifndef TRAIN_TRAINER_MAIN_H_
#define TRAIN_TRAINER_MAIN_H_

#include <functional>

#include "models/spec.h"

namespace dive::train {

// `spec` is called after flag parsing, so it may read model-specific flags.
int TrainerMain(int argc, char** argv,
                const std::function<models::ModelSpec()>& spec);

}  // namespace dive::train

#endif  // TRAIN_TRAINER_MAIN_H_
