#include "distributed/process_group.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>
#include <vector>

#include "glog/logging.h"
#include "tensor/bf16.h"

namespace dive::distributed {

absl::Status ProcessGroup::AllReduceMean(float* data, size_t n) {
  if (absl::Status s = AllReduceSum(data, n); !s.ok()) return s;
  if (size() == 1) return absl::OkStatus();
  const float ranks = static_cast<float>(size());
  for (size_t i = 0; i < n; ++i) data[i] /= ranks;
  return absl::OkStatus();
}

std::unique_ptr<Work> ProcessGroup::AllReduceSumAsync(float* data, size_t n) {
  return std::make_unique<CompletedWork>(AllReduceSum(data, n));
}

std::unique_ptr<Work> ProcessGroup::AllReduceSumBf16Async(uint16_t* data,
                                                          size_t n) {
  std::vector<float> sum(n);
  for (size_t i = 0; i < n; ++i) sum[i] = Bf16ToFloat(data[i]);
  absl::Status s = AllReduceSum(sum.data(), n);
  for (size_t i = 0; i < n; ++i) data[i] = FloatToBf16(sum[i]);
  return std::make_unique<CompletedWork>(std::move(s));
}

absl::Status LocalProcessGroup::BroadcastBytes(void*, size_t, int root) {
  CHECK_EQ(root, 0) << "Broadcast: root " << root
                    << " is not a rank of a group of size 1";
  return absl::OkStatus();
}

void LocalProcessGroup::Abort(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(exit_code);
}

bool LaunchedByMpi() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr ||
         std::getenv("PMIX_RANK") != nullptr;
}

}  // namespace dive::distributed
