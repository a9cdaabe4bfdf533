// Baselines for the op benchmarks: how fast this machine reads memory with the
// pool's threads (the ceiling for batch-1 MatMul and decode attention), how
// long one dependent load takes from each level of the hierarchy and how far a
// strided stream is helped by the hardware prefetchers (what bounds passes
// too small or too scattered to stream: a self-draft level, the next item's
// K and V), and what one fork-join call of the pool costs.
#include <emmintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "bench/micro/bench_util.h"
#include "benchmark/benchmark.h"
#include "common/util/thread_pool.h"

namespace specserve {
using bench::MinOf;
namespace {

constexpr int64_t kBufferBytes = int64_t{320} << 20;  // well beyond any cache

const std::vector<uint8_t>& Buffer() {
  static const std::vector<uint8_t>* buffer = [] {
    auto* b = new std::vector<uint8_t>(kBufferBytes);
    for (int64_t i = 0; i < kBufferBytes; i += 4096) (*b)[i] = static_cast<uint8_t>(i >> 12);
    return b;
  }();
  return *buffer;
}

// Sums [begin, end) bytes as 64-bit lanes with four independent accumulators (SSE2).
uint64_t ReadSum(const uint8_t* p, int64_t begin, int64_t end) {
  __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = begin; i + 64 <= end; i += 64) {
    a0 = _mm_add_epi64(a0, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i)));
    a1 = _mm_add_epi64(a1, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + 16)));
    a2 = _mm_add_epi64(a2, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + 32)));
    a3 = _mm_add_epi64(a3, _mm_load_si128(reinterpret_cast<const __m128i*>(p + i + 48)));
  }
  const __m128i s = _mm_add_epi64(_mm_add_epi64(a0, a1), _mm_add_epi64(a2, a3));
  uint64_t out[2];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), s);
  return out[0] + out[1];
}

// Read bandwidth with the same thread pool the ops use (Arg = threads).
void BM_ReadBandwidth(benchmark::State& state) {
  const std::vector<uint8_t>& buf = Buffer();
  ThreadPool pool(static_cast<int>(state.range(0)));
  const int64_t chunk = 1 << 20;
  for (auto _ : state) {
    std::vector<uint64_t> sums(pool.num_threads(), 0);
    pool.ParallelFor(kBufferBytes / chunk, [&](int64_t b, int64_t e) {
      uint64_t s = ReadSum(buf.data(), b * chunk, e * chunk);
      benchmark::DoNotOptimize(s);
    });
  }
  state.SetBytesProcessed(state.iterations() * kBufferBytes);
}
BENCHMARK(BM_ReadBandwidth)
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->ComputeStatistics("min", MinOf)
    ->Unit(benchmark::kMillisecond);

// One dependent load at a time (a pointer chase over 64-byte lines in random
// order) in a buffer of Arg KB: the latency of whichever level holds it (L1,
// L2, L3, memory). A core with F fill buffers reads at most F lines per
// latency from beyond its L1, whatever the bandwidth.
void BM_LoadLatency(benchmark::State& state) {
  const int64_t lines = state.range(0) * 1024 / 64;
  std::vector<int64_t> order(lines);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(1));
  // Line order[i] holds the address of line order[i + 1] (a single cycle).
  std::vector<uint8_t> buffer(lines * 64 + 64);
  uint8_t* base = buffer.data() + (64 - reinterpret_cast<uintptr_t>(buffer.data()) % 64) % 64;
  for (int64_t i = 0; i < lines; ++i) {
    const void* next = base + order[(i + 1) % lines] * 64;
    std::memcpy(base + order[i] * 64, &next, sizeof(next));
  }
  constexpr int64_t kLoads = 1 << 16;
  const void* p = base + order[0] * 64;
  for (auto _ : state) {
    for (int64_t i = 0; i < kLoads; ++i) std::memcpy(&p, p, sizeof(p));
    benchmark::DoNotOptimize(p);
  }
  state.counters["latency"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kLoads,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_LoadLatency)
    ->ArgName("KB")
    ->Arg(32)
    ->Arg(1024)
    ->Arg(8 << 10)
    ->Arg(64 << 10)
    ->Arg(256 << 10)
    ->UseRealTime()
    ->ComputeStatistics("min", MinOf)
    ->Unit(benchmark::kMillisecond);

// One byte loaded every Arg bytes over the 320 MB buffer, one thread. With
// an L2 streamer the time stays that of reading every line up to strides of
// a few lines; with only the adjacent-line prefetcher it halves from 128 bytes
// on (each load then waits for its own line).
void BM_ReadStride(benchmark::State& state) {
  const std::vector<uint8_t>& buf = Buffer();
  const int64_t stride = state.range(0);
  for (auto _ : state) {
    uint64_t sum = 0;
    for (int64_t i = 0; i < kBufferBytes; i += stride) sum += buf[i];
    benchmark::DoNotOptimize(sum);
  }
  state.counters["lines/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * (kBufferBytes / stride),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ReadStride)
    ->ArgName("stride")
    ->Arg(64)
    ->Arg(128)
    ->Arg(256)
    ->Arg(512)
    ->Arg(4096)
    ->UseRealTime()
    ->ComputeStatistics("min", MinOf)
    ->Unit(benchmark::kMillisecond);

// memcpy of 64 MB, one thread (bytes = bytes copied; traffic is about 2x).
void BM_Memcpy(benchmark::State& state) {
  const int64_t bytes = int64_t{64} << 20;
  std::vector<uint8_t> src(bytes, 1), dst(bytes, 0);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), bytes);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}
BENCHMARK(BM_Memcpy)->UseRealTime()->ComputeStatistics("min", MinOf)->Unit(benchmark::kMillisecond);

// One ParallelFor with almost no work: the per-call cost of the pool.
void BM_ThreadPoolCall(benchmark::State& state) {
  ThreadPool pool(static_cast<int>(state.range(0)));
  std::vector<int64_t> sink(64, 0);
  for (auto _ : state) {
    pool.ParallelFor(8, [&](int64_t b, int64_t e) { sink[b * 8] += e - b; });
  }
  benchmark::DoNotOptimize(sink.data());
}
BENCHMARK(BM_ThreadPoolCall)->Arg(2)->UseRealTime()->ComputeStatistics("min", MinOf);

}  // namespace
}  // namespace specserve
