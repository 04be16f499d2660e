#include "tensor/parallel.h"

#include "tensor/gemm.h"

namespace dive::kernel_internal {

// The one read of the thread's matmul precision outside the GEMM: kernels
// never read it themselves to pass it on.
ThreadContext ThreadContext::Current() {
  ThreadContext context;
  context.matmul_precision = GetMatmulPrecision();
  return context;
}

ScopedThreadContext::ScopedThreadContext(const ThreadContext& context)
    : matmul_precision_(context.matmul_precision) {}

}  // namespace dive::kernel_internal
