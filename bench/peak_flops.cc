// GCC 12 (bug 105593): AVX-512 intrinsics built on _mm512_undefined_*() trip
// -Wuninitialized / -Wmaybe-uninitialized once inlined. Fixed in GCC 13.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "bench/peak_flops.h"

#include <immintrin.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "common/util/cpu_features.h"

namespace specserve {
namespace {

constexpr int kChains = 12;  // independent accumulators: more than latency x FMA ports
constexpr long kIterations = 1 << 20;

// Each function runs kIterations x kChains vector operations; functions carry
// their ISA as a target attribute and run only where the CPU has it.
__attribute__((target("avx512f"), noinline)) float Fp32Avx512(float seed) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(seed * static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-4f);
  for (long k = 0; k < kIterations; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"), noinline)) float Fp32Avx2(float seed) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(seed * static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(1e-4f);
  for (long k = 0; k < kIterations; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

__attribute__((target("avx512f,avx512bf16"), noinline)) float Bf16Avx512(float seed) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(seed * static_cast<float>(i));
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80);  // 1.0
  const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3a83);  // ~1e-3
  for (long k = 0; k < kIterations; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

double ThreadCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// FLOP/s of `kernel` (flops_per_call FLOPs per call) on `threads` threads:
// each thread's rate per second of its own CPU time, summed (other processes
// on the cores slow the wall clock, not the rate a core delivers), best of
// repeated rounds within about `seconds`.
double Rate(float (*kernel)(float), double flops_per_call, int threads, double seconds) {
  double best = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::atomic<float> sink{0};
  do {
    std::vector<double> rate(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const double start = ThreadCpuSeconds();
        sink = sink + kernel(static_cast<float>(t) * 1e-3f);
        rate[t] = flops_per_call / (ThreadCpuSeconds() - start);
      });
    }
    for (auto& th : pool) th.join();
    double total = 0;
    for (double r : rate) total += r;
    best = std::max(best, total);
  } while (std::chrono::steady_clock::now() < end);
  return best;
}

}  // namespace

PeakFlops MeasurePeakFlops(int threads, double seconds) {
  threads = std::max(1, threads);
  const CpuFeatures& f = GetCpuFeatures();
  const CpuIsa isa = SelectedCpuIsa();
  PeakFlops peak;
  const double calls = static_cast<double>(kIterations) * kChains;
  if (isa == CpuIsa::kAvx512) {
    peak.fp32 = Rate(Fp32Avx512, calls * 32, threads, seconds);
    if (f.avx512_bf16) peak.bf16 = Rate(Bf16Avx512, calls * 64, threads, seconds);
  } else if (isa == CpuIsa::kAvx2) {
    peak.fp32 = Rate(Fp32Avx2, calls * 16, threads, seconds);
  }
  return peak;
}

}  // namespace specserve
