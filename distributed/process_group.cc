#include "distributed/process_group.h"

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "glog/logging.h"

namespace dive::distributed {

absl::Status ProcessGroup::AllReduceMean(float* data, size_t n) {
  if (absl::Status s = AllReduceSum(data, n); !s.ok()) return s;
  if (size() == 1) return absl::OkStatus();
  const float ranks = static_cast<float>(size());
  for (size_t i = 0; i < n; ++i) data[i] /= ranks;
  return absl::OkStatus();
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
