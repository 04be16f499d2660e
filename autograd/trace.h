// File: autograd/trace.h
// -----------------------------------------------------------------------------
//
// Tracing: a record of the ops one forward pass runs, for exporters such as
// ONNX (`tools/onnx_export.h`), the way `torch.jit.trace` records a graph.
//
// While a `TraceRecorder` is in scope, every differentiable op this thread
// runs (every `Variable::FromOp`, whether or not gradients are enabled)
// appends a `TracedOp`: its name, its inputs' and output's data and the
// attributes an exporter needs (a convolution's stride, a concat's axis).
// A value is identified by its data: two views of one storage with the same
// offset, shape and strides are the same value (`SameValue`). The recorder
// holds every tensor it saw, so no storage is freed and reused while it
// lives.
//
// An op with attributes sets them on `LastTracedOp()` right after `FromOp`.
// Ops composed from other ops that an exporter should see as one (BatchNorm
// in evaluation mode, global average pooling) run their parts inside an
// `OpaqueTraceScope` and then record themselves with `RecordTracedOp`.
//
// Example:
//
//   TraceRecorder recorder;
//   Variable y = model(Variable(x));
//   for (const TracedOp& op : recorder.ops()) std::cout << op.op << "\n";

#ifndef AUTOGRAD_TRACE_H_
#define AUTOGRAD_TRACE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace dive::autograd {

struct TracedOp {
  std::string op;              // the `Variable::op()` name, e.g. "Conv2d"
  std::vector<Tensor> inputs;  // in the op's argument order
  Tensor output;
  std::map<std::string, std::vector<int64_t>> ints;
  std::map<std::string, float> floats;
};

// Whether `a` and `b` are the same traced value.
bool SameValue(const Tensor& a, const Tensor& b);

class TraceRecorder {
 public:
  // CHECK-fails when this thread already records.
  TraceRecorder();
  ~TraceRecorder();
  TraceRecorder(const TraceRecorder&) = delete;
  TraceRecorder& operator=(const TraceRecorder&) = delete;

  const std::vector<TracedOp>& ops() const { return ops_; }

 private:
  friend TracedOp* RecordTracedOp(const char*, std::vector<Tensor>, Tensor);
  friend TracedOp* LastTracedOp();
  friend class OpaqueTraceScope;
  std::vector<TracedOp> ops_;
  int opaque_depth_ = 0;
};

// Whether this thread records (one thread-local test: ops call it first so
// that tracing costs nothing when off).
bool Tracing();

// Appends an op to this thread's trace and returns it, for the caller to add
// attributes; null when not tracing or inside an `OpaqueTraceScope`.
TracedOp* RecordTracedOp(const char* op, std::vector<Tensor> inputs,
                         Tensor output);

// The op just recorded on this thread, to add attributes to; null when not
// tracing or inside an `OpaqueTraceScope`.
TracedOp* LastTracedOp();

// The ops run while in scope are not recorded.
class OpaqueTraceScope {
 public:
  OpaqueTraceScope();
  ~OpaqueTraceScope();
  OpaqueTraceScope(const OpaqueTraceScope&) = delete;
  OpaqueTraceScope& operator=(const OpaqueTraceScope&) = delete;
};

}  // namespace dive::autograd

#endif  // AUTOGRAD_TRACE_H_
