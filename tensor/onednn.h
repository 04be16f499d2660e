// File: tensor/onednn.h
// -----------------------------------------------------------------------------
//
// Internal to //tensor: the one oneDNN CPU engine that the bf16 convolutions
// (conv_onednn.cc) and the int8 ones (qconv_onednn.cc) make their primitives
// and memories on. Made on first use, after capping oneDNN's ISA at the one
// dive runs: oneDNN picks its kernels from cpuid, and would take AMX where
// the CPU has it even with dive's AMX path turned off (DIVE_ISA).

#ifndef TENSOR_ONEDNN_H_
#define TENSOR_ONEDNN_H_

#include "oneapi/dnnl/dnnl.hpp"

namespace dive::onednn_internal {

dnnl::engine& Engine();

}  // namespace dive::onednn_internal

#endif  // TENSOR_ONEDNN_H_
