#include "distributed/data_parallel.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "glog/logging.h"
#include "tensor/bf16.h"

namespace dive::distributed {

DistributedDataParallel::DistributedDataParallel(
    ProcessGroup& group, std::vector<autograd::Variable> params,
    const DataParallelOptions& options)
    : group_(group),
      params_(std::move(params)),
      overlap_(options.overlap),
      bf16_(options.bf16_compress) {
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
  }
  // From the last parameter back: the order of the backward pass.
  for (size_t i = params_.size(); i-- > 0;) {
    const size_t numel = static_cast<size_t>(params_[i].numel());
    if (buckets_.empty() || buckets_.back().numel + numel > bucket_numel) {
      buckets_.push_back({i, i + 1, 0});
    }
    buckets_.back().begin = i;
    buckets_.back().numel += numel;
  }
  bucket_of_.resize(params_.size());
  offset_.resize(params_.size());
  state_.resize(buckets_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    size_t offset = 0;
    for (size_t i = buckets_[b].begin; i < buckets_[b].end; ++i) {
      bucket_of_[i] = b;
      offset_[i] = offset;
      offset += static_cast<size_t>(params_[i].numel());
    }
    state_[b].buffer.resize(buckets_[b].numel + (buckets_[b].end -
                                                 buckets_[b].begin));
    if (bf16_) state_[b].compressed.resize(state_[b].buffer.size());
  }
  Reset();
  if (group_.size() == 1 || !overlap_) return;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].requires_grad()) continue;
    hooks_.push_back(params_[i].RegisterPostAccumulateGradHook(
        [this, i](const Tensor& grad) { OnGradient(i, grad); }));
  }
}

DistributedDataParallel::~DistributedDataParallel() {
  for (autograd::HookHandle& hook : hooks_) hook.Remove();
  // Started all-reduces still write into the buffers: wait for them.
  WaitAll().IgnoreError();
}

absl::Status DistributedDataParallel::BroadcastParameters(int root) {
  std::vector<Tensor> data;
  data.reserve(params_.size());
  for (const autograd::Variable& p : params_) data.push_back(p.data());
  return BroadcastTensors(group_, data, root);
}

void DistributedDataParallel::Reset() {
  for (size_t b = 0; b < buckets_.size(); ++b) {
    state_[b].waiting = buckets_[b].end - buckets_[b].begin;
    state_[b].work.reset();
  }
  packed_.assign(params_.size(), false);
  next_start_ = 0;
  repack_ = false;
}

void DistributedDataParallel::Pack(size_t i, const Tensor& grad) {
  const Bucket& bucket = buckets_[bucket_of_[i]];
  float* flat = state_[bucket_of_[i]].buffer.data();
  float* flag = flat + bucket.numel + (i - bucket.begin);
  const size_t numel = static_cast<size_t>(params_[i].numel());
  if (grad.defined()) {
    CHECK(grad.dtype() == DType::kFloat32)
        << "DistributedDataParallel: gradient of parameter " << i
        << " has dtype " << DTypeName(grad.dtype());
    const Tensor g = grad.Contiguous();
    std::memcpy(flat + offset_[i], g.data<float>(), numel * sizeof(float));
    *flag = 1.0f;
  } else {
    std::fill(flat + offset_[i], flat + offset_[i] + numel, 0.0f);
    *flag = 0.0f;
  }
}

void DistributedDataParallel::OnGradient(size_t i, const Tensor& grad) {
  if (packed_[i] || repack_) {
    // A second backward pass before AllReduceGradients: the gradient grew
    // after it was packed, maybe sent.
    repack_ = true;
    return;
  }
  Pack(i, grad);
  packed_[i] = true;
  if (--state_[bucket_of_[i]].waiting == 0) StartReady();
  // Open MPI moves non-blocking collectives on only inside MPI calls.
  for (size_t b = 0; b < next_start_; ++b) state_[b].work->Poll();
}

void DistributedDataParallel::StartReady() {
  while (next_start_ < buckets_.size() && state_[next_start_].waiting == 0) {
    Start(next_start_++);
  }
}

void DistributedDataParallel::Start(size_t b) {
  BucketState& state = state_[b];
  const size_t n = state.buffer.size();
  if (bf16_) {
    // The gradients divided before rounding (the sum of means stays in
    // range), the flags as they are: small integers, exact in bf16.
    const size_t numel = buckets_[b].numel;
    const float ranks = static_cast<float>(group_.size());
    for (size_t j = 0; j < numel; ++j) {
      state.compressed[j] = FloatToBf16(state.buffer[j] / ranks);
    }
    for (size_t j = numel; j < n; ++j) {
      state.compressed[j] = FloatToBf16(state.buffer[j]);
    }
    state.work = group_.AllReduceSumBf16Async(state.compressed.data(), n);
    bytes_all_reduced_ += n * sizeof(uint16_t);
  } else {
    state.work = group_.AllReduceSumAsync(state.buffer.data(), n);
    bytes_all_reduced_ += n * sizeof(float);
  }
}

absl::Status DistributedDataParallel::WaitAll() {
  absl::Status first;
  for (size_t b = 0; b < next_start_; ++b) {
    if (state_[b].work == nullptr) continue;
    if (absl::Status s = state_[b].work->Wait(); !s.ok() && first.ok()) {
      first = s;
    }
  }
  return first;
}

absl::Status DistributedDataParallel::AllReduceGradients() {
  if (group_.size() == 1) return absl::OkStatus();  // already the mean
  buckets_started_in_backward_ = next_start_;
  if (repack_) {
    // Every rank sends each bucket once per backward pass: finish this
    // round with what was packed, drop it, and send the accumulated
    // gradients again.
    for (size_t i = 0; i < params_.size(); ++i) {
      if (!packed_[i]) Pack(i, Tensor());
    }
    for (BucketState& state : state_) state.waiting = 0;
    StartReady();
    absl::Status s = WaitAll();
    Reset();
    if (!s.ok()) return s;
    buckets_started_in_backward_ = 0;
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!packed_[i]) Pack(i, params_[i].grad());
  }
  for (BucketState& state : state_) state.waiting = 0;
  StartReady();
  if (absl::Status s = WaitAll(); !s.ok()) {
    Reset();
    return s;
  }
  // Unpack the means.
  const float ranks = static_cast<float>(group_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    const Bucket& bucket = buckets_[b];
    const BucketState& state = state_[b];
    for (size_t i = bucket.begin; i < bucket.end; ++i) {
      autograd::Variable& p = params_[i];
      const size_t numel = static_cast<size_t>(p.numel());
      const size_t flag = bucket.numel + (i - bucket.begin);
      const bool defined = bf16_ ? Bf16ToFloat(state.compressed[flag]) > 0.0f
                                 : state.buffer[flag] > 0.0f;
      if (!defined) {
        p.set_grad(Tensor());
        continue;
      }
      Tensor mean = Tensor::Empty(p.shape());
      float* out = mean.data<float>();
      if (bf16_) {
        const uint16_t* in = state.compressed.data() + offset_[i];
        for (size_t j = 0; j < numel; ++j) out[j] = Bf16ToFloat(in[j]);
      } else {
        const float* in = state.buffer.data() + offset_[i];
        for (size_t j = 0; j < numel; ++j) out[j] = in[j] / ranks;
      }
      p.set_grad(std::move(mean));
    }
  }
  Reset();
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
