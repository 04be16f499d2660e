#include "nn/bf16_activations.h"

#include "tensor/gemm.h"

namespace dive::nn {
namespace {

thread_local Bf16Activations current = Bf16Activations::kWhereExact;

}  // namespace

Bf16Activations GetBf16Activations() { return current; }

bool AutocastStoresBf16(bool training) {
  return training && current == Bf16Activations::kAutocast &&
         GetMatmulPrecision() == MatmulPrecision::kBfloat16;
}

ScopedBf16Activations::ScopedBf16Activations(Bf16Activations choice)
    : previous_(current) {
  current = choice;
}

ScopedBf16Activations::~ScopedBf16Activations() { current = previous_; }

}  // namespace dive::nn
