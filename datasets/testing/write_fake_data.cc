// Writes a tiny fake Fashion-MNIST directory (see fake_data.h) for the shell
// tests of the trainer binaries:
//
//   write_fake_data --dir=/tmp/data --train=64 --test=32 [--gzip]
//       [--train_labels=N] [--height=28] [--width=28] [--seed=0]

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "datasets/testing/fake_data.h"

ABSL_FLAG(std::string, dir, "", "Directory to write.");
ABSL_FLAG(int64_t, train, 64, "Training images.");
ABSL_FLAG(int64_t, test, 32, "Test images.");
ABSL_FLAG(int64_t, train_labels, -1, "Training labels (-1: one per image).");
ABSL_FLAG(int64_t, height, 28, "Image height.");
ABSL_FLAG(int64_t, width, 28, "Image width.");
ABSL_FLAG(bool, gzip, false, "Write .gz files.");
ABSL_FLAG(uint64_t, seed, 0, "Seed for pixels and labels.");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  dive::data::testing::FakeDataOptions o;
  o.train = absl::GetFlag(FLAGS_train);
  o.test = absl::GetFlag(FLAGS_test);
  o.train_labels = absl::GetFlag(FLAGS_train_labels);
  o.height = absl::GetFlag(FLAGS_height);
  o.width = absl::GetFlag(FLAGS_width);
  o.gzip = absl::GetFlag(FLAGS_gzip);
  o.seed = absl::GetFlag(FLAGS_seed);
  const absl::Status s =
      dive::data::testing::WriteFakeFashionMnist(absl::GetFlag(FLAGS_dir), o);
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
