// Baselines for the op benchmarks: how fast this machine reads memory with the
// pool's threads (the ceiling for batch-1 MatMul and decode attention), and
// what one fork-join call of the pool costs.
#include <emmintrin.h>

#include <cstdint>
#include <cstring>
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
