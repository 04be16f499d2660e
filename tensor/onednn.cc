#include "tensor/onednn.h"

#include "tensor/cpu.h"

namespace dive::onednn_internal {

dnnl::engine& Engine() {
  static dnnl::engine* const engine = [] {
    // AMX only where dive's AMX path is active.
    if (ActiveIsa() < Isa::kAmx) {
      try {
        dnnl::set_max_cpu_isa(dnnl::cpu_isa::avx512_core_bf16);
      } catch (const dnnl::error&) {
        // Too late: another user of oneDNN in this process made a primitive.
      }
    }
    return new dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return *engine;
}

}  // namespace dive::onednn_internal
