// The attention kernel alone (the selected ISA's AttentionRowsFn), one work
// item on one thread with its K and V in cache: no item setup, no thread
// pool, no memory stream. Against BM_Attention it shows what the driver and
// the memory system add; against the FMA peak what the kernel itself leaves.
// A verify item of stories260K (head_dim 8) is m = 10 rows: 5 chain tokens x
// 2 query heads of a GQA group, each with one extra tile of its own chain.
#include <cstdint>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/ops/cpu/kernels.h"
#include "common/ops/kv_layout.h"
#include "common/util/aligned_vector.h"
#include "common/util/cpu_features.h"

namespace specserve::bench {
namespace {

// Args: rows m, head_dim, key tiles (16 keys each), extra tiles (0/1 per
// row), bf16 (0: fp32 tiles, 1: bf16 tiles in the cache's layout).
void BM_AttentionKernel(benchmark::State& state) {
  const int m = static_cast<int>(state.range(0));
  const int d = static_cast<int>(state.range(1));
  const int n_tiles = static_cast<int>(state.range(2));
  const bool extras = state.range(3) != 0;
  const KvType type = state.range(4) != 0 ? KvType::kBF16 : KvType::kF32;
  // A draft's window (a 7-tile item): 16 sinks, then a ring of 64 rows that
  // wraps `ring` lanes into a tile, then the new row.
  const int ring = static_cast<int>(state.range(5));
  const int bytes = KvTypeBytes(type);
  const int tile_floats = kKvTileRows * d;  // room for a tile of either type
  // Aligned as the caches' tiles and the attention's scratch are.
  AlignedVector<float> k(static_cast<size_t>(n_tiles) * tile_floats), v(k.size()),
      ek(static_cast<size_t>(m) * tile_floats), ev(ek.size());
  // Rows written as the caches write them (fp32, or bf16 in its layout).
  const KvRegionLayout region{type, 1, d, static_cast<int64_t>(n_tiles) * tile_floats};
  std::vector<float> kr(d), vr(d);
  for (int64_t row = 0; row < static_cast<int64_t>(n_tiles) * kKvTileRows; ++row) {
    for (int c = 0; c < d; ++c) {
      kr[c] = 0.001f * static_cast<float>((row * d + c) % 97);
      vr[c] = 0.002f * static_cast<float>((row * d + c) % 89);
    }
    KvStoreRow(region, k.data(), v.data(), row, kr.data(), vr.data());
  }
  auto tile_at = [&](AlignedVector<float>& buf, int t) {
    return reinterpret_cast<char*>(buf.data()) + static_cast<int64_t>(t) * kKvTileRows * d * bytes;
  };
  std::vector<cpu::AttentionTile> tiles(n_tiles), extra(m);
  for (int t = 0; t < n_tiles; ++t) {
    tiles[t] = {tile_at(k, t), tile_at(v, t), 0, kKvTileRows, t * kKvTileRows};
  }
  int listed = n_tiles * kKvTileRows;
  if (ring > 0) {
    listed = 0;
    for (int t = 0; t < n_tiles; ++t) {
      tiles[t].lane_begin = t == 1 ? ring : 0;
      tiles[t].lane_end = t == n_tiles - 2 ? ring : (t == n_tiles - 1 ? 1 : kKvTileRows);
      tiles[t].list_begin = listed;
      listed += tiles[t].lane_end - tiles[t].lane_begin;
    }
  }
  std::vector<int32_t> visible(m, listed), offset(m + 1, 0);
  for (int r = 0; r < m; ++r) {
    // Row r's chain: 1 + r / 2 keys after the shared ones, in its token's tile
    // (2 query heads a token read the same one, as AttentionRunner lays them out).
    extra[r] = {tile_at(ek, r / 2), tile_at(ev, r / 2), 0, 1 + r / 2, listed};
    offset[r + 1] = extras ? r + 1 : 0;
  }
  std::vector<float> q(static_cast<size_t>(m) * d, 0.1f), out(q.size());
  AlignedVector<float> scratch(cpu::AttentionScratchFloats(m, n_tiles + 1, d));
  std::vector<float*> outs(m);
  for (int r = 0; r < m; ++r) outs[r] = out.data() + r * d;
  cpu::AttentionRowsProblem p;
  p.m = m;
  p.d = d;
  p.type = type;
  p.q = q.data();
  p.tiles = tiles.data();
  p.n_tiles = n_tiles;
  p.visible = visible.data();
  p.extra_tiles = extras ? extra.data() : nullptr;
  p.extra_offset = extras ? offset.data() : nullptr;
  p.out = outs.data();
  p.scratch = scratch.data();
  const cpu::KernelTable& kernels = cpu::KernelsFor(SelectedCpuIsa());
  for (auto _ : state) {
    kernels.attention_rows(p);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(std::string(CpuIsaName(SelectedCpuIsa())));
  // A row-tile: one query row against 16 keys (2 x 16 x d FMAs of scores and
  // values, 16 exps); 1e9 / this rate is the nanoseconds per row-tile.
  state.counters["row-tiles"] = benchmark::Counter(static_cast<double>(m) * n_tiles,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_AttentionKernel)
    ->ArgNames({"rows", "head_dim", "tiles", "extras", "bf16", "ring"})
    ->Args({2, 8, 64, 0, 0, 0})  // stories260K decode: 2 query heads of a kv head
    ->Args({2, 8, 64, 0, 1, 0})
    ->Args({2, 8, 7, 0, 0, 5})     // its self-draft level: window 64 + 16 sinks, the ring wrapped
    ->Args({10, 8, 64, 1, 0, 0})   // stories260K verify of a 5-node chain
    ->Args({10, 8, 64, 1, 1, 0})   // the same over a bf16 cache
    ->Args({2, 16, 32, 0, 0, 0})   // TinyStories-656K decode at context 512
    ->Args({10, 16, 32, 1, 0, 0})  // TinyStories-656K verify at context 512
    ->Args({10, 16, 32, 1, 1, 0})
    ->Args({5, 64, 64, 1, 0, 0})  // the 125M model (no GQA) verify
    ->Args({5, 64, 64, 1, 1, 0})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace specserve::bench
