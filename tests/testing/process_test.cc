// The process helpers the integration tests and specserve-bench use.
#include "tests/testing/process.h"

#include <unistd.h>

#include <chrono>

#include "gtest/gtest.h"

namespace specserve::testing {
namespace {

// Keeps this thread busy for `seconds` of wall time.
double Burn(double seconds) {
  volatile double x = 1;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    for (int i = 0; i < 1000; ++i) x = x * 1.0000001 + 1e-9;
  }
  return x;
}

TEST(ProcessTest, CpuSecondsCountsTheCpuAProcessHasUsed) {
  const double before = CpuSeconds(getpid());
  ASSERT_GE(before, 0);
  Burn(0.3);
  const double after = CpuSeconds(getpid());
  // 0.3 s of one busy thread, in 10 ms ticks; less only if this machine gave the
  // thread under half of a core meanwhile.
  EXPECT_GE(after - before, 0.15);
  EXPECT_LT(after - before, 5.0);
}

TEST(ProcessTest, CpuSecondsOfNoProcessIsMinusOne) {
  EXPECT_EQ(CpuSeconds(0x7ffffff0), -1);
  EXPECT_EQ(ResidentBytes(0x7ffffff0), -1);
}

}  // namespace
}  // namespace specserve::testing
