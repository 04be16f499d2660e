#include "datasets/testing/fashion_mnist_runfiles.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tools/cpp/runfiles/runfiles.h"

namespace dive::data::testing {

std::string FashionMnistRunfilesDir() {
  using ::bazel::tools::cpp::runfiles::Runfiles;
  std::string error;
  std::unique_ptr<Runfiles> runfiles(Runfiles::CreateForTest(&error));
  EXPECT_NE(runfiles, nullptr) << error;
  if (runfiles == nullptr) return "";
  const std::string file =
      runfiles->Rlocation("fashion_mnist/train-labels-idx1-ubyte.gz");
  return file.substr(0, file.rfind('/'));
}

}  // namespace dive::data::testing
