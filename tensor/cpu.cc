#include "tensor/cpu.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tensor/cpu_probes.h"

#if defined(__x86_64__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

namespace dive {
namespace {

constexpr const char* kIsaNames[] = {"generic", "avx2", "avx512", "avx512_bf16",
                                     "amx"};

#if defined(__x86_64__)
struct Regs {
  uint32_t a = 0, b = 0, c = 0, d = 0;
};

Regs Cpuid(uint32_t leaf, uint32_t subleaf) {
  Regs r;
  if (!__get_cpuid_count(leaf, subleaf, &r.a, &r.b, &r.c, &r.d)) return {};
  return r;
}

uint64_t Xcr0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool Bit(uint32_t word, int bit) { return (word >> bit) & 1u; }

CpuFeatures Detect() {
  CpuFeatures f;
  char brand[49] = {};
  for (uint32_t i = 0; i < 3; ++i) {
    const Regs r = Cpuid(0x80000002u + i, 0);
    std::memcpy(brand + 16 * i, &r, 16);
  }
  f.brand = std::string(absl::StripAsciiWhitespace(brand));
  const Regs leaf1 = Cpuid(1, 0);
  // OSXSAVE: xgetbv is available and XCR0 says which state the OS saves.
  if (!Bit(leaf1.c, 27)) return f;
  const uint64_t xcr0 = Xcr0();
  const bool avx_state = (xcr0 & 0x6) == 0x6;          // SSE, AVX
  const bool avx512_state = (xcr0 & 0xE6) == 0xE6;     // + opmask, ZMM
  const bool amx_state = (xcr0 & 0x60000) == 0x60000;  // XTILECFG, XTILEDATA
  const Regs leaf7 = Cpuid(7, 0), leaf7_1 = Cpuid(7, 1);
  if (avx_state && Bit(leaf1.c, 28)) {
    f.avx2 = Bit(leaf7.b, 5);
    f.fma = Bit(leaf1.c, 12);
  }
  if (avx512_state) {
    f.avx512f = Bit(leaf7.b, 16);
    f.avx512dq = Bit(leaf7.b, 17);
    f.avx512bw = Bit(leaf7.b, 30);
    f.avx512vl = Bit(leaf7.b, 31);
    f.avx512_bf16 = f.avx512f && Bit(leaf7_1.a, 5);
    f.avx512_vnni = f.avx512f && Bit(leaf7.c, 11);
  }
  f.avx_vnni = f.avx2 && Bit(leaf7_1.a, 4);
  if (amx_state && Bit(leaf7.d, 24) && Bit(leaf7.d, 22) &&
      RequestAmxPermission()) {
    f.amx_tile = true;
    f.amx_bf16 = true;
  }
  // AMX-INT8 (leaf 7 EDX bit 25) beside AMX-TILE, with the tile data
  // granted (asked again if AMX-BF16 is absent: harmless).
  if (amx_state && Bit(leaf7.d, 24) && Bit(leaf7.d, 25) &&
      RequestAmxPermission()) {
    f.amx_tile = true;
    f.amx_int8 = true;
  }
  return f;
}
#else
CpuFeatures Detect() { return {}; }
#endif

// -1: not decided yet.
std::atomic<int> active{-1};

// DefaultIsa of this CPU (the rate is measured only where it matters).
Isa CpuDefaultIsa() {
  const Isa best = BestIsa(DetectedCpu());
  return best == Isa::kAvx512Bf16 ? DefaultIsa(best, Bf16DotRate()) : best;
}

}  // namespace

absl::string_view IsaName(Isa isa) { return kIsaNames[static_cast<int>(isa)]; }

absl::StatusOr<Isa> ParseIsa(absl::string_view name) {
  for (int i = 0; i <= static_cast<int>(Isa::kAmx); ++i) {
    if (name == kIsaNames[i]) return static_cast<Isa>(i);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown instruction set '", name,
                   "' (one of: ", absl::StrJoin(kIsaNames, ", "), ")"));
}

bool RequestAmxPermission() {
#if defined(__x86_64__) && defined(__linux__)
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

const CpuFeatures& DetectedCpu() {
  static const CpuFeatures* features = new CpuFeatures(Detect());
  return *features;
}

Isa BestIsa(const CpuFeatures& f) {
  const bool avx2 = f.avx2 && f.fma;
  const bool avx512 =
      avx2 && f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl;
  if (avx512 && f.avx512_bf16 && f.amx_tile && f.amx_bf16) return Isa::kAmx;
  if (avx512 && f.avx512_bf16) return Isa::kAvx512Bf16;
  if (avx512) return Isa::kAvx512;
  if (avx2) return Isa::kAvx2;
  return Isa::kGeneric;
}

double Bf16DotRate() {
  static const double rate = [] {
    if (BestIsa(DetectedCpu()) < Isa::kAvx512Bf16) return 0.0;
    using Clock = std::chrono::steady_clock;
    const auto seconds = [](void (*burst)(int64_t, float*)) {
      float sink;
      const Clock::time_point start = Clock::now();
      burst(4096, &sink);
      return std::chrono::duration<double>(Clock::now() - start).count();
    };
    // The fastest of alternating bursts: the first ones also wake the
    // AVX-512 units, and an interrupt slows only the burst it hits.
    double fma = 1, dot = 1;
    for (int round = 0; round < 5; ++round) {
      fma = std::min(fma, seconds(&cpu_internal::Avx512FmaBurst));
      dot = std::min(dot, seconds(&cpu_internal::Avx512Bf16DotBurst));
    }
    return 2 * fma / dot;  // VDPBF16PS: two multiply-adds per lane
  }();
  return rate;
}

Isa DefaultIsa(Isa best, double bf16_dot_rate) {
  return best == Isa::kAvx512Bf16 && bf16_dot_rate < 1.25 ? Isa::kAvx512 : best;
}

absl::StatusOr<Isa> IsaFromEnvironment() {
  const Isa best = BestIsa(DetectedCpu());
  const char* value = std::getenv("DIVE_ISA");
  if (value == nullptr || *value == '\0') return CpuDefaultIsa();
  absl::StatusOr<Isa> isa = ParseIsa(value);
  if (!isa.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("DIVE_ISA: ", isa.status().message()));
  }
  if (*isa > best) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DIVE_ISA=", value, ": this CPU's best is ", IsaName(best)));
  }
  return *isa;
}

Isa ActiveIsa() {
  int isa = active.load(std::memory_order_relaxed);
  if (isa < 0) {
    const absl::StatusOr<Isa> chosen = IsaFromEnvironment();
    isa = static_cast<int>(chosen.ok() ? *chosen : CpuDefaultIsa());
    active.store(isa, std::memory_order_relaxed);
  }
  return static_cast<Isa>(isa);
}

absl::Status SetActiveIsa(Isa isa) {
  const Isa best = BestIsa(DetectedCpu());
  if (isa > best) {
    return absl::FailedPreconditionError(
        absl::StrCat("this CPU cannot run ", IsaName(isa),
                     " kernels (best: ", IsaName(best), ")"));
  }
  active.store(static_cast<int>(isa), std::memory_order_relaxed);
  return absl::OkStatus();
}

void ForceActiveIsaForTesting(Isa isa) {
  active.store(static_cast<int>(isa), std::memory_order_relaxed);
}

std::string CpuDescription() {
  const CpuFeatures& f = DetectedCpu();
  std::vector<std::string> features;
  for (const auto& [has, name] : {std::pair{f.avx2, "avx2"},
                                  {f.fma, "fma"},
                                  {f.avx512f, "avx512f"},
                                  {f.avx512bw, "avx512bw"},
                                  {f.avx512dq, "avx512dq"},
                                  {f.avx512vl, "avx512vl"},
                                  {f.avx512_bf16, "avx512_bf16"},
                                  {f.amx_tile, "amx_tile"},
                                  {f.amx_bf16, "amx_bf16"},
                                  {f.avx512_vnni, "avx512_vnni"},
                                  {f.avx_vnni, "avx_vnni"},
                                  {f.amx_int8, "amx_int8"}}) {
    if (has) features.push_back(name);
  }
  const char* forced = std::getenv("DIVE_ISA");
  return absl::StrCat(
      f.brand.empty() ? "unknown CPU" : f.brand, "; ",
      features.empty() ? "no AVX2" : absl::StrJoin(features, " "),
      BestIsa(f) == Isa::kAvx512Bf16
          ? absl::StrFormat(" (VDPBF16PS at %.2fx FMA's rate)", Bf16DotRate())
          : "",
      "; kernels: ", IsaName(ActiveIsa()),
      forced != nullptr && *forced != '\0'
          ? absl::StrCat(" (DIVE_ISA=", forced, ")")
          : "");
}

}  // namespace dive
