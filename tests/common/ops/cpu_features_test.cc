#include "common/ops/ops.h"
#include "common/util/cpu_features.h"

#include <cstdlib>

#include "common/ops/cpu/cpu_ops.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

TEST(CpuFeaturesTest, LevelsAreConsistentWithFlags) {
  const CpuFeatures& f = GetCpuFeatures();
  std::printf("CPU features: %s; max ISA %s\n", f.ToString().c_str(),
              std::string(CpuIsaName(MaxSupportedCpuIsa())).c_str());
  if (MaxSupportedCpuIsa() == CpuIsa::kAvx512) {
    EXPECT_TRUE(f.avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq);
  }
  if (f.avx2) {
    EXPECT_TRUE(f.fma && f.f16c);
  }
  if (f.avx512_bf16 || f.avx512_vnni) {
    EXPECT_TRUE(f.avx512f);
  }
}

TEST(CpuFeaturesTest, NamesRoundTrip) {
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    EXPECT_EQ(CpuIsaFromName(CpuIsaName(isa)), isa);
  }
  EXPECT_EQ(CpuIsaFromName("AVX2"), CpuIsa::kAvx2);
  EXPECT_FALSE(CpuIsaFromName("sse9").has_value());
}

TEST(CpuFeaturesTest, EnvironmentLowersTheLevel) {
  setenv("SPECSERVE_CPU_ISA", "scalar", 1);
  EXPECT_EQ(SelectedCpuIsa(), CpuIsa::kScalar);
  EXPECT_EQ(MakeCpuOps(1)->name(), "cpu-scalar (1 thread)");
  setenv("SPECSERVE_CPU_ISA", "avx512", 1);
  EXPECT_EQ(SelectedCpuIsa(), MaxSupportedCpuIsa());  // clamped to what the CPU has
  setenv("SPECSERVE_CPU_ISA", "bogus", 1);
  EXPECT_EQ(SelectedCpuIsa(), MaxSupportedCpuIsa());
  unsetenv("SPECSERVE_CPU_ISA");
  EXPECT_EQ(SelectedCpuIsa(), MaxSupportedCpuIsa());
  EXPECT_EQ(ClampCpuIsa(CpuIsa::kScalar), CpuIsa::kScalar);
}

}  // namespace
}  // namespace specserve
