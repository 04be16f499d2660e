#include "distributed/data_parallel.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "glog/logging.h"

namespace dive::distributed {

DistributedDataParallel::DistributedDataParallel(
    ProcessGroup& group, std::vector<autograd::Variable> params,
    const DataParallelOptions& options)
    : group_(group), params_(std::move(params)) {
  CHECK(!params_.empty()) << "DistributedDataParallel: empty parameter list";
  CHECK_GT(options.bucket_bytes, 0u)
      << "DistributedDataParallel: bucket_bytes must be positive";
  const size_t bucket_numel =
      std::max<size_t>(1, options.bucket_bytes / sizeof(float));
  for (size_t i = 0; i < params_.size(); ++i) {
    const autograd::Variable& p = params_[i];
    CHECK(p.defined()) << "DistributedDataParallel: parameter " << i
                       << " is undefined";
    CHECK(p.data().dtype() == DType::kFloat32)
        << "DistributedDataParallel: parameter " << i << " has dtype "
        << DTypeName(p.data().dtype()) << ", not float32";
    const size_t numel = static_cast<size_t>(p.numel());
    if (buckets_.empty() || buckets_.back().numel + numel > bucket_numel) {
      buckets_.push_back({i, i, 0});
    }
    buckets_.back().end = i + 1;
    buckets_.back().numel += numel;
  }
  size_t largest = 0;
  for (const Bucket& b : buckets_) {
    largest = std::max(largest, b.numel + (b.end - b.begin));
  }
  buffer_.resize(largest);
}

absl::Status DistributedDataParallel::BroadcastParameters(int root) {
  std::vector<Tensor> data;
  data.reserve(params_.size());
  for (const autograd::Variable& p : params_) data.push_back(p.data());
  return BroadcastTensors(group_, data, root);
}

absl::Status DistributedDataParallel::AllReduceGradients() {
  if (group_.size() == 1) return absl::OkStatus();  // already the mean
  const float ranks = static_cast<float>(group_.size());
  for (const Bucket& b : buckets_) {
    float* flat = buffer_.data();
    float* defined = flat + b.numel;
    // Pack.
    size_t offset = 0;
    for (size_t i = b.begin; i < b.end; ++i) {
      const Tensor& grad = params_[i].grad();
      const size_t numel = static_cast<size_t>(params_[i].numel());
      if (grad.defined()) {
        CHECK(grad.dtype() == DType::kFloat32)
            << "DistributedDataParallel: gradient of parameter " << i
            << " has dtype " << DTypeName(grad.dtype());
        const Tensor g = grad.Contiguous();
        std::memcpy(flat + offset, g.data<float>(), numel * sizeof(float));
        defined[i - b.begin] = 1.0f;
      } else {
        std::fill(flat + offset, flat + offset + numel, 0.0f);
        defined[i - b.begin] = 0.0f;
      }
      offset += numel;
    }
    if (absl::Status s = group_.AllReduceSum(flat, b.numel + (b.end - b.begin));
        !s.ok()) {
      return s;
    }
    // Unpack the means.
    offset = 0;
    for (size_t i = b.begin; i < b.end; ++i) {
      autograd::Variable& p = params_[i];
      const size_t numel = static_cast<size_t>(p.numel());
      if (defined[i - b.begin] > 0.0f) {
        Tensor mean = Tensor::Empty(p.shape());
        float* out = mean.data<float>();
        const float* in = flat + offset;
        for (size_t j = 0; j < numel; ++j) out[j] = in[j] / ranks;
        p.set_grad(std::move(mean));
      } else {
        p.set_grad(Tensor());
      }
      offset += numel;
    }
  }
  return absl::OkStatus();
}

absl::Status BroadcastTensors(ProcessGroup& group,
                              const std::vector<Tensor>& tensors, int root) {
  if (group.size() == 1) {
    return group.BroadcastBytes(nullptr, 0, root);  // checks root
  }
  for (const Tensor& t : tensors) {
    CHECK(t.defined()) << "BroadcastTensors: undefined tensor";
    // Contiguous() is the tensor itself when it already is contiguous.
    Tensor c = t.Contiguous();
    if (absl::Status s = group.BroadcastBytes(
            c.raw_data(), static_cast<size_t>(c.numel()) * DTypeSize(c.dtype()),
            root);
        !s.ok()) {
      return s;
    }
    if (!c.SharesStorage(t)) {
      Tensor view = t;
      view.CopyFrom(c);
    }
  }
  return absl::OkStatus();
}

}  // namespace dive::distributed
