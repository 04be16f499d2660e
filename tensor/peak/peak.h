// File: tensor/peak/peak.h
// -----------------------------------------------------------------------------
//
// The machine's reference speeds, measured in the same process as the work
// they are the yardstick of (every benchmark binary; bench/throughput; the
// trainers' per-layer profiler, train/layer_profiler.h, for its roofline):
//
//   * PeakFmaLoop: a register-only loop of independent fused multiply-adds at
//     the widest vector width the build targets. It touches no memory, so it
//     measures the cores' peak FLOP rate: the yardstick of compute-bound
//     kernels (GEMM, convolution).
//   * PeakBf16DotLoop: the same with AVX512-BF16's VDPBF16PS (each lane adds
//     two bf16 products to a float32 sum): the yardstick of the bf16 GEMM.
//     Only for CPUs that have it (tensor/cpu.h).
//   * PeakVnniDotLoop: the same with AVX512-VNNI's VPDPBUSD (each int32 lane
//     adds four uint8 * int8 products): the yardstick of the int8 GEMM
//     (tensor/qgemm.h). Only for CPUs that have it.
//   * TriadLoop: STREAM's triad, a[i] = b[i] + s * c[i], over arrays the
//     caller sizes like the memory-bound kernels it stands beside (pooling
//     and batch norm at LeNet's shapes stream a few MB, i.e. the last-level
//     cache): the yardstick of memory-bound kernels.
//
// MeasurePeakFlops and MeasureTriadBandwidth time them: the roofline's roof
// and its slope, whose ratio is the ridge point, the FLOP per byte above
// which a kernel can be compute-bound.
//
// bench/regression.py divides each kernel's speed by the peak of its kind,
// so a machine with other cores or another memory system compares with its
// own baseline on the same terms.

#ifndef TENSOR_PEAK_PEAK_H_
#define TENSOR_PEAK_PEAK_H_

#include <cstdint>

namespace dive {

// Runs `iterations` rounds of FMAs on one thread and returns the number of
// floating-point operations performed (2 per lane per FMA).
int64_t PeakFmaLoop(int64_t iterations);

// Runs `iterations` rounds of VDPBF16PS on one thread and returns the
// floating-point operations performed (4 per lane per instruction). The CPU
// must have AVX512-BF16.
int64_t PeakBf16DotLoop(int64_t iterations);

// Runs `iterations` rounds of VPDPBUSD on zmm registers on one thread and
// returns the integer operations performed (8 per int32 lane per
// instruction: four multiply-adds, counted as two operations each, as FLOPs
// are). The CPU must have AVX512-VNNI.
int64_t PeakVnniDotLoop(int64_t iterations);

// Runs `loop(iterations)` (PeakFmaLoop, PeakBf16DotLoop, PeakVnniDotLoop)
// on `threads` threads at once and returns the operations they performed in all.
int64_t RunOnThreads(int64_t (*loop)(int64_t), int64_t iterations,
                     int threads);

// a[i] = b[i] + scalar * c[i] for i < n; returns the bytes moved (12 n: two
// arrays read, one written).
int64_t TriadLoop(float* a, const float* b, const float* c, int64_t n,
                  float scalar);

// FLOP/s of `loop` on `threads` threads at once: the best of 10 rounds of
// about 10 ms each on a 5 GHz core.
double MeasurePeakFlops(int64_t (*loop)(int64_t), int threads);

// Bytes/s of TriadLoop on `threads` threads, each over its share of three
// arrays of `bytes_per_array` (allocated here): the best of 5 passes after
// one to fault the pages in. Arrays well past the last-level cache measure
// the DRAM's bandwidth.
double MeasureTriadBandwidth(int64_t bytes_per_array, int threads);

}  // namespace dive

#endif  // TENSOR_PEAK_PEAK_H_
