#include "autograd/trace.h"

#include <utility>

#include "glog/logging.h"

namespace dive::autograd {
namespace {

thread_local TraceRecorder* active = nullptr;

}  // namespace

bool SameValue(const Tensor& a, const Tensor& b) {
  return a.defined() && b.defined() && a.SharesStorage(b) &&
         a.offset() == b.offset() && a.shape() == b.shape() &&
         a.strides() == b.strides() && a.dtype() == b.dtype();
}

TraceRecorder::TraceRecorder() {
  CHECK(active == nullptr) << "TraceRecorder: this thread already records";
  active = this;
}

TraceRecorder::~TraceRecorder() { active = nullptr; }

bool Tracing() { return active != nullptr; }

TracedOp* RecordTracedOp(const char* op, std::vector<Tensor> inputs,
                         Tensor output) {
  if (active == nullptr || active->opaque_depth_ > 0) return nullptr;
  active->ops_.push_back(TracedOp{op, std::move(inputs), std::move(output)});
  return &active->ops_.back();
}

TracedOp* LastTracedOp() {
  if (active == nullptr || active->opaque_depth_ > 0 || active->ops_.empty()) {
    return nullptr;
  }
  return &active->ops_.back();
}

OpaqueTraceScope::OpaqueTraceScope() {
  if (active != nullptr) ++active->opaque_depth_;
}

OpaqueTraceScope::~OpaqueTraceScope() {
  if (active != nullptr) --active->opaque_depth_;
}

}  // namespace dive::autograd
