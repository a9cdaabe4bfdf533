// How much of the memory time arithmetic can hide on one thread of this
// machine, with none of the attention kernel's own work: the reference that
// BM_AttentionKernelStreamed is judged against. An item is 64 KB, 32 KB of
// "K" then 32 KB of "V" (the bytes of one stories260K verify item over 1024
// keys), read a 64-byte line at a time with a fixed number of FMAs per line
// for each of 10 rows (a verify of 5 x a GQA group of 2: the kernel's scores
// pass does 10 FMAs a K line, its values pass about 20 a V line with the exp).
// Cached: 4 items over and over (in L2). Streamed: 256 MB of items from a KV
// block pool (huge-page arenas, as the caches), visited in a shuffled order
// (items of different sequences are not neighbours in memory), each item
// fetching the next one a line per line it reads, in the order it will read
// them. Streamed time near max(cached time, memory time) means the machine
// overlaps the two; the kernel's streamed time against this one is what its
// own structure costs.
//
// Medians on the AMD EPYC of 2026-12-02, one thread (10 / 20 FMAs a line):
// cached 2.32 us an item; streamed with the next-item prefetch 2.94, memory
// alone (0 FMAs) 2.22, without the prefetch 4.44: the machine overlaps the
// two, within 1.3x of max(cached, memory). K and V interleaved per tile of 8
// lines (what a single-pass online softmax reads) 3.28 with the prefetch and
// 4.51 without: no better than two passes. Both cores at once (a process
// pinned to each): 3.0-3.1 us, memory alone 2.1-2.2 (~30 GB/s a core), where
// the kernel's own verify item streamed 5.5 and its decode item 3.1-3.6. The
// kernel's verify item costs 3.77 us cached (its exp, score stores and row
// groups: 1.6x this item's arithmetic), 4.70 streamed on one thread: it
// overlaps as well as this loop does there; what it lacks is arithmetic speed.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/kv/kv_block_pool.h"
#include "common/util/cpu_features.h"

namespace specserve::bench {
namespace {

constexpr int64_t kItemBytes = int64_t{64} << 10;
constexpr int64_t kHalfBytes = kItemBytes / 2;  // K, then V
constexpr int64_t kLineBytes = 64;
constexpr int64_t kHalfLines = kHalfBytes / kLineBytes;
constexpr int64_t kTileLines = 8;  // a head_dim-8 tile: 16 keys x 8 dims of fp32
constexpr int kRows = 10;
constexpr size_t kStreamedBytes = size_t{256} << 20;
constexpr int kCachedItems = 4;

enum Layout { kTwoPasses = 0, kInterleaved = 1 };

// F FMAs of one line's 16 floats, row after row (unrolled and inlined: the
// accumulators stay in registers); F = 0: one add, so the line is still read.
template <int F>
__attribute__((target("avx512f"), always_inline)) inline void Line(const uint8_t* p,
                                                                   const __m512 (&q)[kRows],
                                                                   __m512 (&acc)[kRows]) {
  const __m512 x = _mm512_load_ps(reinterpret_cast<const float*>(p));
  if constexpr (F == 0) acc[0] = _mm512_add_ps(acc[0], x);
#pragma GCC unroll 32
  for (int f = 0; f < F; ++f) acc[f % kRows] = _mm512_fmadd_ps(q[f % kRows], x, acc[f % kRows]);
}

// FK FMAs of a K line's 16 floats and FV of a V line's, spread over the rows
// (compile-time counts: the loops unroll and the accumulators stay in registers).
template <int FK, int FV, Layout L>
__attribute__((target("avx512f"))) float RunItems(const uint8_t* const* items, int n, int first,
                                                  int count, bool prefetch) {
  __m512 q[kRows], acc[kRows];
  for (int r = 0; r < kRows; ++r) {
    q[r] = _mm512_set1_ps(0.999f + 1e-4f * static_cast<float>(r));
    acc[r] = _mm512_setzero_ps();
  }
  for (int c = 0, i = first; c < count; ++c) {
    const int next_i = i + 1 < n ? i + 1 : 0;
    const uint8_t* item = items[i];
    const uint8_t* next = prefetch ? items[next_i] : nullptr;
    // The next item's line at the offset this item reads now: fetched in the
    // order the next item will read its lines, one per line read.
    // Without a next item: the line about to be read (no help, the same instructions).
    const uint8_t* ahead = next != nullptr ? next : item;
    const int64_t step = L == kTwoPasses ? kHalfLines : kTileLines;
    for (int64_t t = 0; t < kHalfLines; t += step) {
      for (int64_t l = t; l < t + step; ++l) {
        _mm_prefetch(reinterpret_cast<const char*>(ahead + l * kLineBytes), _MM_HINT_T1);
        Line<FK>(item + l * kLineBytes, q, acc);
      }
      for (int64_t l = t; l < t + step; ++l) {
        _mm_prefetch(reinterpret_cast<const char*>(ahead + kHalfBytes + l * kLineBytes),
                     _MM_HINT_T1);
        Line<FV>(item + kHalfBytes + l * kLineBytes, q, acc);
      }
    }
    i = next_i;
  }
  alignas(64) float lanes[16];
  __m512 s = acc[0];
  for (int r = 1; r < kRows; ++r) s = _mm512_add_ps(s, acc[r]);
  _mm512_store_ps(lanes, s);
  return std::accumulate(lanes, lanes + 16, 0.0f);
}

using RunItemsFn = float (*)(const uint8_t* const*, int, int, int, bool);

template <Layout L>
RunItemsFn ItemsFn(int fmas_k, int fmas_v) {
  if (fmas_k == 10 && fmas_v == 20) return RunItems<10, 20, L>;
  if (fmas_k == 2 && fmas_v == 2) return RunItems<2, 2, L>;
  if (fmas_k == 0 && fmas_v == 0) return RunItems<0, 0, L>;
  return nullptr;
}

// Args: FMAs per K line, FMAs per V line, layout (0: K then V; 1: per tile of
// 8 lines, K then V), prefetch of the next item (0/1), streamed (0: cached).
void BM_StreamOverlap(benchmark::State& state) {
  if (MaxSupportedCpuIsa() < CpuIsa::kAvx512) {
    state.SkipWithError("needs AVX-512 (the attention kernel's level it is set against)");
    return;
  }
  const int fmas_k = static_cast<int>(state.range(0)), fmas_v = static_cast<int>(state.range(1));
  const Layout layout = static_cast<Layout>(state.range(2));
  const bool prefetch = state.range(3) != 0, streamed = state.range(4) != 0;
  const RunItemsFn run = layout == kTwoPasses ? ItemsFn<kTwoPasses>(fmas_k, fmas_v)
                                              : ItemsFn<kInterleaved>(fmas_k, fmas_v);
  if (run == nullptr) {
    state.SkipWithError("FMAs per line: 10/20, 2/2 or 0/0");
    return;
  }
  KvBlockPool pool(0);  // keeps nothing idle: the blocks' pages go back with them
  std::vector<KvBlock> blocks;
  std::vector<const uint8_t*> items;
  const int n = streamed ? static_cast<int>(kStreamedBytes / kItemBytes) : kCachedItems;
  for (int i = 0; i < n; ++i) {
    uint8_t* block = blocks.emplace_back(pool.GetUnzeroed(kItemBytes)).get();
    for (int64_t b = 0; b < kItemBytes; b += 4) {
      const float value = 1e-3f * static_cast<float>((i + b) % 7);
      std::memcpy(block + b, &value, sizeof(value));
    }
    items.push_back(block);
  }
  std::shuffle(items.begin(), items.end(), std::mt19937(1));
  // Batches of items per timing, so the clock reads are few.
  constexpr int kBatch = 64;
  int first = 0;
  float sum = 0;
  for (auto _ : state) {
    sum += run(items.data(), n, first, kBatch, prefetch);
    first = (first + kBatch) % n;
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetBytesProcessed(state.iterations() * kBatch * kItemBytes);
  state.counters["us_per_item"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kBatch * 1e-6,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

BENCHMARK(BM_StreamOverlap)
    ->ArgNames({"fmas_k", "fmas_v", "interleaved", "prefetch", "streamed"})
    ->Args({10, 20, 0, 0, 0})  // the verify item's arithmetic, cached
    ->Args({10, 20, 0, 1, 1})  // streamed, the next item fetched
    ->Args({10, 20, 0, 0, 1})  // streamed, hardware prefetchers alone
    ->Args({10, 20, 1, 1, 1})  // K and V interleaved per tile
    ->Args({10, 20, 1, 0, 1})
    ->Args({0, 0, 0, 1, 1})  // memory alone
    ->Args({2, 2, 0, 1, 1})  // a decode item's arithmetic (2 rows)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace specserve::bench
