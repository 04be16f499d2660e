// Cheat sheet section 4, dropout:
//   bazel run //cheatsheet:dropout
// measures E[h'] against h over 20,000 masks, shows the book's arange
// example, and trains the book's MLP one epoch on Fashion-MNIST with and
// without dropout, side by side.
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"

#include "cheatsheet/common.h"
#include "cheatsheet/dropout.h"
#include "cheatsheet/sheet_main.h"
#include "datasets/fashion_mnist.h"
#include "tensor/tensor.h"

ABSL_FLAG(std::string, data_dir, dive::data::kDefaultFashionMnistDir,
          "directory with the Fashion-MNIST IDX files");
// One thread by default: the GEMMs of a 256-example MLP batch are small, and
// on a busy 2-core machine OpenMP's extra thread made the two epochs 3x
// slower (29 s instead of 8 s, measured while other builds ran).
ABSL_FLAG(int, threads, 1, "threads for the tensor kernels (0: all cores)");
ABSL_FLAG(int64_t, train_limit, 0,
          "train on the first N examples only (0: the whole epoch)");

int main(int argc, char** argv) {
  using namespace dive::cheatsheet;  // NOLINT: a short demo
  InitSheetMain(argc, argv);
  dive::SetNumThreads(absl::GetFlag(FLAGS_threads));
  std::cout << "X = arange(16) as [2, 8] through dropout:\n  p = 0:\n"
            << FormatMatrix(DropoutOfArange(0.0f), 0, "    ") << "  p = 0.5:\n"
            << FormatMatrix(DropoutOfArange(0.5f), 0, "    ") << "\n";
  for (float p : {0.2f, 0.5f}) {
    const DropoutExpectation e = MeasureDropoutExpectation(p);
    std::cout << absl::StrFormat("p = %.1f, mean of h' over %d masks:\n", p,
                                 e.masks)
              << "  h        " << FormatRow(e.h) << "\n"
              << "  E[h']    " << FormatRow(e.mean_h_prime) << "\n"
              << absl::StrFormat("  fraction dropped %.4f\n\n", e.zero_fraction);
  }

  const std::string dir = absl::GetFlag(FLAGS_data_dir);
  absl::StatusOr<dive::data::InMemoryDataset> train =
      dive::data::LoadFashionMnist(dir, dive::data::Split::kTrain);
  absl::StatusOr<dive::data::InMemoryDataset> test =
      dive::data::LoadFashionMnist(dir, dive::data::Split::kTest);
  if (!train.ok() || !test.ok()) {
    std::cerr << "no Fashion-MNIST in " << dir << ": "
              << (train.ok() ? test.status() : train.status()) << "\n";
    return 1;
  }
  const DropoutComparison c = CompareDropout(
      *train, *test, {.train_limit = absl::GetFlag(FLAGS_train_limit)});
  std::cout << absl::StrFormat(
      "MLP 784-256-256-10, one epoch (%d examples, batch 256, lr 0.5):\n"
      "                      train loss  train acc  test acc\n",
      c.train_examples);
  for (const EpochResult& r : {c.without, c.with}) {
    std::cout << absl::StrFormat("  dropout %.1f, %.1f   %10.4f  %9.4f  %8.4f\n",
                                 r.dropout1, r.dropout2, r.train_loss,
                                 r.train_acc, r.test_acc);
  }
  std::cout << "(train metrics are measured during the epoch, with dropout "
               "on; test in evaluation mode, without)\n";
  return 0;
}
