// The AMX self-check of the GEMM (tensor/gemm.h): run by the first thread to
// ask for the AMX path in bf16, with the tile GEMM under CatchFaults;
// threads asking meanwhile wait for the verdict.

#include "tensor/gemm_amx_check.h"

#include <setjmp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "tensor/bf16.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/gemm_kernels.h"

namespace dive {
namespace gemm_internal {

bool AmxEmulated() { return AmxEmulatedMicroKernel != nullptr; }

Isa AmxFallback() { return std::min(Isa::kAvx512Bf16, BestIsa(DetectedCpu())); }

}  // namespace gemm_internal

namespace {

using gemm_internal::AmxFallback;

// Where a SIGILL or SIGSEGV of this thread jumps while CatchFaults runs, and
// which signal it was.
struct FaultJump {
  sigjmp_buf target;
  volatile sig_atomic_t signo = 0;
};
thread_local FaultJump* fault_jump = nullptr;
struct sigaction previous_sigill, previous_sigsegv;

void OnFault(int signo) {
  if (fault_jump != nullptr) {
    fault_jump->signo = signo;
    siglongjmp(fault_jump->target, 1);
  }
  // Another thread's: delivered again to the handler from before CatchFaults.
  sigaction(signo, signo == SIGILL ? &previous_sigill : &previous_sigsegv,
            nullptr);
  raise(signo);
}

// Runs `f` with this thread's SIGILL and SIGSEGV caught, then restores the
// previous handlers; returns the signal that stopped `f`, or 0. The jump out
// of `f` skips destructors: `f` must hold no object that has one where it
// can fault.
int CatchFaults(absl::FunctionRef<void()> f) {
  struct sigaction on_fault = {};
  on_fault.sa_handler = &OnFault;
  sigemptyset(&on_fault.sa_mask);
  sigaction(SIGILL, &on_fault, &previous_sigill);
  sigaction(SIGSEGV, &on_fault, &previous_sigsegv);
  FaultJump jump;
  if (sigsetjmp(jump.target, /*savemask=*/1) == 0) {
    fault_jump = &jump;
    f();
  }
  fault_jump = nullptr;
  sigaction(SIGILL, &previous_sigill, nullptr);
  sigaction(SIGSEGV, &previous_sigsegv, nullptr);
  return jump.signo;
}

// The self-check's product: a whole 32 x 32 tile of C and its edges
// (m = 32 + 5, n = 32 + 13), k in two steps of 32 and a zero-padded one.
constexpr int64_t kCheckM = 37, kCheckN = 45, kCheckK = 70;

// Deterministic operands in [-1, 1], most of them rounded by bf16.
std::vector<float> CheckOperand(int64_t size, int64_t stride) {
  std::vector<float> v(size);
  for (int64_t i = 0; i < size; ++i) {
    v[i] = static_cast<float>(i * stride % 101) / 50 - 1;
  }
  return v;
}

// The self-check with `fault` simulated: OK, or why the AMX kernel must not
// run. Its GEMM takes the AMX path (amx_checking below).
absl::Status RunAmxSelfCheck(AmxSelfCheckFault fault) {
  if (fault == AmxSelfCheckFault::kPermissionRefused ||
      !(gemm_internal::AmxEmulated() || RequestAmxPermission())) {
    return absl::PermissionDeniedError(
        "Linux refused the tile data: arch_prctl(ARCH_REQ_XCOMP_PERM) failed");
  }
  const std::vector<float> a = CheckOperand(kCheckM * kCheckK, 37);
  const std::vector<float> b = CheckOperand(kCheckK * kCheckN, 53);
  std::vector<float> c(kCheckM * kCheckN);
  const ScopedMatmulPrecision bf16(MatmulPrecision::kBfloat16);
  GemmLhs lhs;
  lhs.Pack(false, kCheckM, kCheckK, a.data(), kCheckK);
  const int signo = CatchFaults([&] {
    if (fault == AmxSelfCheckFault::kSigill) raise(SIGILL);
    Gemm(
        lhs, kCheckN,
        [&](int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst,
            int64_t ld) {
          for (int64_t p = 0; p < kc; ++p) {
            const float* src = b.data() + (p0 + p) * kCheckN + j0;
            std::copy(src, src + nc, dst + p * ld);
          }
        },
        0.0f, c.data(), kCheckN);
  });
  if (signo != 0) {
    return absl::InternalError(absl::StrCat(
        signo == SIGILL ? "SIGILL" : "SIGSEGV", " in the tile GEMM"));
  }
  if (fault == AmxSelfCheckFault::kCorruptResult) c[4 * kCheckN + 17] += 3;
  for (int64_t i = 0; i < kCheckM; ++i) {
    for (int64_t j = 0; j < kCheckN; ++j) {
      double want = 0, magnitude = 0;
      for (int64_t p = 0; p < kCheckK; ++p) {
        const double product =
            static_cast<double>(RoundToBf16(a[i * kCheckK + p])) *
            RoundToBf16(b[p * kCheckN + j]);
        want += product;
        magnitude += std::fabs(product);
      }
      // Exact products summed in float32: off by at most kCheckK roundings
      // of 2^-24 of their magnitude (4.2e-6). NaN fails too.
      const double error = std::fabs(c[i * kCheckN + j] - want);
      if (!(error <= 1e-5 * magnitude)) {
        return absl::InternalError(absl::StrFormat(
            "tile result differs from the bf16 products by %.3g at C[%d][%d]",
            error, i, j));
      }
    }
  }
  return absl::OkStatus();
}

// The self-check's verdict once decided (null before, and again after
// SetAmxSelfCheckFaultForTesting), and the fault the next one simulates.
std::atomic<const absl::Status*> amx_verdict{nullptr};
AmxSelfCheckFault amx_fault = AmxSelfCheckFault::kNone;  // AmxCheckMutex's
// Set on the thread that runs the check: its GEMM takes the AMX path.
thread_local bool amx_checking = false;

std::mutex& AmxCheckMutex() {
  static std::mutex* const mutex = new std::mutex;
  return *mutex;
}

// The verdict, the check run first where the AMX path is active and it has
// not run; null where neither.
const absl::Status* AmxVerdict() {
  const absl::Status* verdict = amx_verdict.load(std::memory_order_acquire);
  if (verdict != nullptr || ActiveIsa() != Isa::kAmx) return verdict;
  const std::lock_guard<std::mutex> lock(AmxCheckMutex());
  verdict = amx_verdict.load(std::memory_order_relaxed);
  if (verdict != nullptr) return verdict;
  amx_checking = true;
  verdict = new absl::Status(RunAmxSelfCheck(amx_fault));
  amx_checking = false;
  if (!verdict->ok()) {
    SetActiveIsa(AmxFallback()).IgnoreError();  // a path the CPU has
    LOG(WARNING) << "AMX self-check failed (" << verdict->message()
                 << "); using " << IsaName(AmxFallback()) << " kernels";
  }
  amx_verdict.store(verdict, std::memory_order_release);
  return verdict;
}

}  // namespace

namespace gemm_internal {

bool AmxPassed() {
  if (amx_checking) return true;
  const absl::Status* verdict = AmxVerdict();
  return verdict != nullptr && verdict->ok();
}

}  // namespace gemm_internal

absl::Status AmxSelfCheck() {
  const absl::Status* verdict = AmxVerdict();
  if (verdict == nullptr) {
    return absl::FailedPreconditionError("the AMX path has not been active");
  }
  return *verdict;
}

void SetAmxSelfCheckFaultForTesting(AmxSelfCheckFault fault) {
  const std::lock_guard<std::mutex> lock(AmxCheckMutex());
  amx_fault = fault;
  delete amx_verdict.exchange(nullptr);
}

}  // namespace dive
