#include "bench/memory_bandwidth.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace specserve {
namespace {

// Sums 64-bit words with independent accumulators so loads, not adds, bound it.
uint64_t SumRange(const uint64_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0, e = 0, f = 0, g = 0, h = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
    e += p[i + 4];
    f += p[i + 5];
    g += p[i + 6];
    h += p[i + 7];
  }
  for (; i < n; ++i) a += p[i];
  return a + b + c + d + e + f + g + h;
}

double ThreadCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

}  // namespace

double MeasureReadBandwidthPerCpuSecond(int threads, double bytes, int repeats) {
  threads = std::max(1, threads);
  const size_t words = static_cast<size_t>(bytes) / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buffer(new uint64_t[words]);
  for (size_t i = 0; i < words; ++i) buffer[i] = i;
  double best = 0.0;
  std::vector<uint64_t> sums(threads);
  std::vector<double> rate(threads);
  for (int r = 0; r < repeats; ++r) {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const size_t begin = words * t / threads, end = words * (t + 1) / threads;
        const double start = ThreadCpuSeconds();
        sums[t] = SumRange(buffer.get() + begin, end - begin);
        rate[t] =
            static_cast<double>((end - begin) * sizeof(uint64_t)) / (ThreadCpuSeconds() - start);
      });
    }
    for (auto& th : pool) th.join();
    double total = 0;
    for (double x : rate) total += x;
    best = std::max(best, total);
  }
  volatile uint64_t sink = 0;
  for (uint64_t s : sums) sink = sink + s;
  return best;
}

double MeasureReadBandwidth(int threads, double bytes, int repeats) {
  threads = std::max(1, threads);
  const size_t words = static_cast<size_t>(bytes) / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buffer(new uint64_t[words]);
  // Each thread touches its own part first so pages are mapped before timing.
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      const size_t begin = words * t / threads, end = words * (t + 1) / threads;
      for (size_t i = begin; i < end; ++i) buffer[i] = i;
    });
  }
  for (auto& th : pool) th.join();
  double best = 0.0;
  std::vector<uint64_t> sums(threads);
  for (int r = 0; r < repeats; ++r) {
    pool.clear();
    const auto start = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const size_t begin = words * t / threads, end = words * (t + 1) / threads;
        sums[t] = SumRange(buffer.get() + begin, end - begin);
      });
    }
    for (auto& th : pool) th.join();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(words * sizeof(uint64_t)) / seconds);
  }
  volatile uint64_t sink = 0;
  for (uint64_t s : sums) sink = sink + s;
  return best;
}

}  // namespace specserve
