// Run-time detection of the x86 SIMD extensions the CPU kernels use, and the
// choice of kernel level. Binaries are built for baseline x86-64 and carry
// AVX2 and AVX-512 kernels; the level is picked here at run time, never by
// -march=native (machines of one kind differ in flags).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace specserve {

struct CpuFeatures {
  bool avx2 = false;  // all of AVX2, FMA, F16C, with OS support for ymm state
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;  // each AVX-512 flag implies OS support for zmm/opmask state
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  bool avx_vnni = false;

  // "avx2 fma f16c avx512f ..." (the flags that are set).
  std::string ToString() const;
};

// Detected once (cpuid + xgetbv) and cached.
const CpuFeatures& GetCpuFeatures();

// Kernel levels, lowest first.
enum class CpuIsa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

std::string_view CpuIsaName(CpuIsa isa);                      // "scalar", "avx2", "avx512"
std::optional<CpuIsa> CpuIsaFromName(std::string_view name);  // case-insensitive

// The highest level this CPU (and OS) supports: kAvx512 needs AVX-512 F/BW/VL/DQ
// plus the AVX2 set; kAvx2 needs AVX2, FMA and F16C.
CpuIsa MaxSupportedCpuIsa();

// MaxSupportedCpuIsa(), lowered by the environment variable
// SPECSERVE_CPU_ISA=scalar|avx2|avx512 when set (a level above the supported
// one is clamped to it; an unknown value is ignored with a message on stderr).
CpuIsa SelectedCpuIsa();

// `wanted` clamped to MaxSupportedCpuIsa().
CpuIsa ClampCpuIsa(CpuIsa wanted);

}  // namespace specserve
