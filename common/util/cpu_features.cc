#include "common/util/cpu_features.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace specserve {
namespace {

#if defined(__x86_64__) || defined(__i386__)
// XCR0: which register states the OS saves and restores on context switches.
uint64_t ReadXcr0() {
  uint32_t eax = 0;
  uint32_t edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

bool Bit(uint32_t reg, int bit) { return (reg >> bit) & 1u; }

CpuFeatures Detect() {
  CpuFeatures f;
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool osxsave = Bit(ecx, 27);
  const bool avx = Bit(ecx, 28);
  const bool fma = Bit(ecx, 12);
  const bool f16c = Bit(ecx, 29);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = ReadXcr0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;              // SSE + AVX state
  const bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0;  // opmask + ZMM_Hi256 + Hi16_ZMM
  if (!os_ymm) return f;

  unsigned int max_leaf = __get_cpuid_max(0, nullptr);
  uint32_t b7 = 0, c7 = 0, a71 = 0;
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    b7 = ebx;
    c7 = ecx;
    const unsigned int max_sub = eax;
    if (max_sub >= 1) {
      __cpuid_count(7, 1, eax, ebx, ecx, edx);
      a71 = eax;
    }
  }
  f.fma = fma;
  f.f16c = f16c;
  f.avx2 = Bit(b7, 5) && fma && f16c;
  f.avx_vnni = f.avx2 && Bit(a71, 4);
  if (os_zmm) {
    f.avx512f = Bit(b7, 16);
    f.avx512dq = f.avx512f && Bit(b7, 17);
    f.avx512bw = f.avx512f && Bit(b7, 30);
    f.avx512vl = f.avx512f && Bit(b7, 31);
    f.avx512_vnni = f.avx512f && Bit(c7, 11);
    f.avx512_bf16 = f.avx512f && Bit(a71, 5);
  }
  return f;
}
#else
CpuFeatures Detect() { return CpuFeatures(); }
#endif

}  // namespace

std::string CpuFeatures::ToString() const {
  std::string s;
  auto add = [&s](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(avx2, "avx2");
  add(fma, "fma");
  add(f16c, "f16c");
  add(avx512f, "avx512f");
  add(avx512bw, "avx512bw");
  add(avx512vl, "avx512vl");
  add(avx512dq, "avx512dq");
  add(avx512_vnni, "avx512_vnni");
  add(avx512_bf16, "avx512_bf16");
  add(avx_vnni, "avx_vnni");
  return s;
}

const CpuFeatures& GetCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

std::string_view CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar:
      return "scalar";
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kAvx512:
      return "avx512";
  }
  return "unknown";
}

std::optional<CpuIsa> CpuIsaFromName(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(std::string(name));
  if (lower == "scalar") return CpuIsa::kScalar;
  if (lower == "avx2") return CpuIsa::kAvx2;
  if (lower == "avx512") return CpuIsa::kAvx512;
  return std::nullopt;
}

CpuIsa MaxSupportedCpuIsa() {
  const CpuFeatures& f = GetCpuFeatures();
  if (!f.avx2) return CpuIsa::kScalar;
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq) return CpuIsa::kAvx512;
  return CpuIsa::kAvx2;
}

CpuIsa ClampCpuIsa(CpuIsa wanted) {
  const CpuIsa max = MaxSupportedCpuIsa();
  return static_cast<int>(wanted) > static_cast<int>(max) ? max : wanted;
}

CpuIsa SelectedCpuIsa() {
  const char* env = std::getenv("SPECSERVE_CPU_ISA");
  if (env == nullptr || *env == '\0') return MaxSupportedCpuIsa();
  const std::optional<CpuIsa> wanted = CpuIsaFromName(env);
  if (!wanted.has_value()) {
    std::fprintf(stderr, "specserve: ignoring unknown SPECSERVE_CPU_ISA=%s (scalar|avx2|avx512)\n",
                 env);
    return MaxSupportedCpuIsa();
  }
  return ClampCpuIsa(*wanted);
}

}  // namespace specserve
